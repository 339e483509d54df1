"""The classic REST answers: their JSON shapes (the OpenAPI schemas) and how the state fills them.

Field names follow the service callbridge replaces (`pbx.calls.get` → `{"result": 5}`,
`pbx.ac.get` → `{"count", "AConnByCallID": [{"callID", "direction", "did", "AConnList"}]}`);
the answers the classic documentation leaves open keep its style: a `count` and a list, `num`
for a DN's number, `Free`/`Busy` and `LoggedIn`/`LoggedOut` for states.
"""

from collections.abc import Callable
from typing import Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, Field

from shared.call_state import CallParty, CallState, CallStateDirection, CallStateName, LegStatus, PartyType
from shared.directory import Extension, ForwardingProfile, RecordingOption
from shared.pbx_state import PbxState

Presence = Literal["Free", "Busy"]
QueueStatus = Literal["LoggedIn", "LoggedOut"]


class ErrorAnswer(BaseModel):
    error: str = Field(description="what went wrong, in plain words")


class CommandAnswer(BaseModel):
    result: Literal["success", "failure"]
    reason: str = Field("", description="why the command failed")
    callID: int | None = Field(None, description="makecall: the PBX call number of the new call")


class CountAnswer(BaseModel):
    result: int = Field(description="the number of calls in progress")


class Connection(BaseModel):
    dnNum: str = Field(description="the DN whose leg this is (an extension, or the trunk's DN)")
    dnType: PartyType
    externalParty: str = Field(description="the number at the other end of the leg")
    status: LegStatus


class ActiveCall(BaseModel):
    callID: int = Field(description="the PBX call number")
    direction: CallStateDirection
    did: str = Field(description="the DID an inbound call came in on")
    AConnList: list[Connection]


class ActiveCallsAnswer(BaseModel):
    count: int
    AConnByCallID: list[ActiveCall]


class Party(BaseModel):
    dnNum: str = Field(description="the party's number: an extension, a queue, or an outside number")
    name: str
    dnType: PartyType


class CallInfo(BaseModel):
    callID: int
    state: CallStateName
    startedAt: AwareDatetime
    answeredAt: AwareDatetime | None = Field(description="null until someone answered")
    did: str
    owner: Party | None = Field(description="who placed the call")
    talkTo: list[Party] = Field(description="who the owner is talking with")
    routingTo: list[Party] = Field(description="who is being rung, or where the call waits")


class CallsInfoAnswer(BaseModel):
    count: int
    callsInfo: list[CallInfo]


class Entry(BaseModel):
    num: str
    name: str


class ExtensionsAnswer(BaseModel):
    count: int
    extensions: list[Entry]


class QueueEntry(Entry):
    agents: list[str]


class QueuesAnswer(BaseModel):
    count: int
    queues: list[QueueEntry]


class GroupEntry(Entry):
    members: list[str]


class GroupsAnswer(BaseModel):
    count: int
    groups: list[GroupEntry]


class IvrsAnswer(BaseModel):
    count: int
    ivrs: list[Entry]


class DidEntry(BaseModel):
    number: str
    name: str


class LineEntry(Entry):
    dids: list[DidEntry]


class LinesAnswer(BaseModel):
    count: int
    lines: list[LineEntry]


class QueueMembership(BaseModel):
    num: str = Field(description="the queue")
    status: QueueStatus = Field(description="the agent's status in this queue")


class ExtensionState(BaseModel):
    num: str
    registered: bool
    status: Presence = Field(description="Busy while the extension dials or talks")
    fwdName: ForwardingProfile = Field(description="the current forwarding profile")
    qGlobalStatus: QueueStatus = Field(description="logged in to the queues at all")
    qStatus: list[QueueMembership]


class ExtensionInfo(BaseModel):
    num: str
    name: str
    enabled: bool
    external: bool = Field(description="may make and take outside calls")
    recording: RecordingOption
    registered: bool
    fwdName: ForwardingProfile
    queues: list[str] = Field(description="the queues it is an agent of")
    groups: list[str] = Field(description="the ring groups it is a member of")


class Member(BaseModel):
    num: str
    name: str
    registered: bool
    status: Presence
    loggedIn: bool = Field(description="queues: logged in globally and to this queue; groups: always true")


class MembersAnswer(BaseModel):
    num: str = Field(description="the queue or ring group")
    count: int
    members: list[Member]


class IsFreeAnswer(BaseModel):
    num: str
    free: bool = Field(description="at least one member can take a call now")


# --- filling them ----------------------------------------------------------------------------------


def active_call(call: CallState) -> ActiveCall:
    return ActiveCall(
        callID=call.call_number,
        direction=call.direction,
        did=call.did,
        AConnList=[
            Connection(dnNum=leg.dn, dnType=leg.dn_type, externalParty=leg.external_party, status=leg.status)
            for leg in call.legs
        ],
    )


def call_info(call: CallState) -> CallInfo:
    return CallInfo(
        callID=call.call_number,
        state=call.state,
        startedAt=call.started_at,
        answeredAt=call.answered_at,
        did=call.did,
        owner=_party(call.owner) if call.owner else None,
        talkTo=[_party(p) for p in call.talk_to],
        routingTo=[_party(p) for p in call.routing_to],
    )


class RenderedCalls:
    """The JSON of a list of calls in progress (`pbx.ac.get`, `pbx.callsinfo.get`), each call
    rendered once per state of it: with hundreds of calls, one change re-renders one call."""

    def __init__(self, render: Callable[[CallState], BaseModel], field: str) -> None:
        self._render, self._field = render, field.encode()
        self._parts: dict[UUID, bytes] = {}  # a call state's event id → its JSON

    def json(self, state: PbxState) -> bytes:
        parts = {}
        for call in sorted(state.calls.values(), key=lambda call: call.call_number):
            part = self._parts.get(call.event_id)
            parts[call.event_id] = part if part is not None else self._render(call).model_dump_json().encode()
        self._parts = parts
        return b'{"count":%d,"%s":[%s]}' % (len(parts), self._field, b",".join(parts.values()))


def extension_state(state: PbxState, extension: Extension) -> ExtensionState:
    agent_of = [q.number for q in state.queues if extension.number in q.agents]
    return ExtensionState(
        num=extension.number,
        registered=extension.registered,
        status=_presence(state, extension),
        fwdName=extension.profile,
        qGlobalStatus=_logged(extension.queue_logged_in),
        qStatus=[
            QueueMembership(num=q, status=_logged(q not in extension.logged_out_queues)) for q in agent_of
        ],
    )


def extension_info(state: PbxState, extension: Extension) -> ExtensionInfo:
    return ExtensionInfo(
        num=extension.number,
        name=extension.name,
        enabled=extension.enabled,
        external=extension.external,
        recording=extension.recording,
        registered=extension.registered,
        fwdName=extension.profile,
        queues=[q.number for q in state.queues if extension.number in q.agents],
        groups=[g.number for g in state.groups if extension.number in g.members],
    )


def members(state: PbxState, number: str, numbers: tuple[str, ...], queue: bool) -> MembersAnswer:
    listed = []
    for member in numbers:
        extension = state.extensions.get(member)
        if extension is None:
            continue
        logged_in = not queue or (extension.queue_logged_in and number not in extension.logged_out_queues)
        listed.append(
            Member(
                num=member,
                name=extension.name,
                registered=extension.registered,
                status=_presence(state, extension),
                loggedIn=logged_in,
            )
        )
    return MembersAnswer(num=number, count=len(listed), members=listed)


def can_take_a_call(member: Member) -> bool:
    return member.registered and member.loggedIn and member.status == "Free"


def _party(party: CallParty) -> Party:
    return Party(dnNum=party.number, name=party.name, dnType=party.type)


def _presence(state: PbxState, extension: Extension) -> Presence:
    return "Busy" if extension.number in state.busy else "Free"


def _logged(logged_in: bool) -> QueueStatus:
    return "LoggedIn" if logged_in else "LoggedOut"
