"""The call tracker: PBX updates in, normalized bus events out. Pure: no I/O, no clock.

It implements the classic contract (docs/classic-webhooks.md) over the updates of
`updates.py`:

- A call is keyed by its PBX call number (3CX `callid`). A call with an external-party leg is a
  *chain*; its id is `YYMMDDhhmmss_N` from the PBX-local time its first participant appeared and
  its call number. Calls without one (extension to extension, the consultation leg of an
  attended transfer) are tracked for presence only and never reported as chains.
- Direction: the external leg's `originated_by_type` is the trunk for incoming chains.
- `call.ringing` when an extension's leg starts ringing; `user_type` is `queue` when a queue
  rings it (`on_behalf_of_type`), `ext` when the call is routed or transferred to that very
  extension, `other` otherwise (ring group, IVR, forwarding…).
- Link numbers: 0 until the first answer, 1 from it, +1 at every transfer.
- `call.answered` when an extension's leg becomes Connected on an unanswered link (`NotDef`, or
  `Blind` after a blind transfer), or appears Connected with `referred_by_dn` while another
  extension talks (an attended transfer completes: `Accomp`, and the old link ends transferred).
- A blind transfer is the external leg re-pointed (`party_dn`) with a new `referred_by_dn` to a DN
  that is not talking: the answered link ends transferred and an unanswered one opens.
- The chain ends when the external leg is removed. An answered link ends `Ok` at the moment its
  talker left; an unanswered one is `Missed`, reported at the DN the call was routed to (the
  dialling extension for outgoing calls), with `callback_requested` from the removal's reason.
- Durations: talk time from the answer (or completed attended transfer) to the link's end; a
  missed link from its start (arrival, dialling, or the blind transfer that opened it).
- Presence: an extension is busy while it has a Dialing or Connected leg on any call.
- Every call, internal ones included, is also published as a `pbx.call` state after each change
  to its legs (the API's view of calls in progress; `CallState` documents direction and state),
  and a last time with `ended` when its last leg leaves.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.events import (
    CallAnswered,
    CallDirection,
    CallEnded,
    CallEvent,
    CallLeg,
    CallParty,
    CallRinging,
    CallStarted,
    CallState,
    CallStateName,
    Directory,
    DirectorySnapshot,
    Event,
    ExtensionForwarding,
    ExtensionOptions,
    ExtensionPresence,
    ExtensionQueueLogin,
    ExtensionRegistration,
    PartyType,
    RoutedType,
    TransferType,
    UserType,
)

from .updates import (
    EXTENSION,
    EXTERNAL_LINE,
    IVR,
    QUEUE,
    RING_GROUP,
    DirectoryUpdate,
    ForwardingUpdate,
    OptionsUpdate,
    ParticipantUpdate,
    PbxUpdate,
    QueueLoginUpdate,
    RegistrationUpdate,
)

ROUTED_TYPES: dict[str, RoutedType] = {
    EXTENSION: "extension",
    QUEUE: "queue",
    RING_GROUP: "group",
    IVR: "ivr",
    EXTERNAL_LINE: "external",
}
PARTY_TYPES: dict[str, PartyType] = {
    EXTENSION: "extension",
    QUEUE: "queue",
    RING_GROUP: "group",
    IVR: "ivr",
    EXTERNAL_LINE: "line",
}
VIEW_CACHE = 10_000  # parties and legs kept for reuse before the caches start again
ROUTED_PARTIES: dict[RoutedType, PartyType] = {
    "extension": "extension",
    "queue": "queue",
    "group": "group",
    "ivr": "ivr",
    "external": "external",
}


@dataclass(slots=True)
class _Chain:
    chain_id: str
    call_number: int
    direction: str
    external: str
    did_name: str
    did_number: str
    routed_to: str
    routed_type: RoutedType
    originator: str
    first_routed: str
    link: int = 0
    link_started: datetime | None = None
    answered_at: datetime | None = None
    talker: str = ""
    talker_left: datetime | None = None
    referral: tuple[str, str] = ("", "")
    next_transfer_type: TransferType = "NotDef"


@dataclass(slots=True)
class _Call:
    callid: int
    started: datetime
    members: dict[tuple[str, int], ParticipantUpdate] = field(default_factory=dict)
    chain: _Chain | None = None
    chain_id: str = ""
    did: str = ""
    answered: datetime | None = None
    seen: tuple[Any, ...] = ()  # what its last published state showed
    views: dict[tuple[str, int], CallLeg] = field(default_factory=dict)  # each member's CallLeg


class CallTracker:
    def __init__(self, directory: Directory, *, zone: ZoneInfo, source: str, seq: int = 0) -> None:
        self._zone = zone
        self._source = source
        self._seq = seq
        self._calls: dict[int, _Call] = {}
        self._active_legs: dict[str, int] = {}  # extension → Dialing/Connected legs on any call
        self._did_names: dict[str, str] = {}
        self._names: dict[str, str] = {}
        self._parties: dict[tuple[str, PartyType], CallParty] = {}  # immutable views, made once
        self._leg_views: dict[tuple[str, str, str, str], CallLeg] = {}
        self.directory = directory
        self._learn(directory)

    @property
    def seq(self) -> int:
        """The sequence number of the last event made."""
        return self._seq

    def apply(self, update: PbxUpdate) -> list[Event]:
        self._out: list[Event] = []
        if isinstance(update, ParticipantUpdate):
            self._participant(update)
        elif isinstance(update, RegistrationUpdate):
            self._emit(ExtensionRegistration, update.at, extension=update.dn, registered=update.registered)
        elif isinstance(update, ForwardingUpdate):
            self._emit(ExtensionForwarding, update.at, extension=update.dn, profile=update.profile)
        elif isinstance(update, QueueLoginUpdate):
            self._emit(
                ExtensionQueueLogin,
                update.at,
                extension=update.dn,
                queue=update.queue,
                logged_in=update.logged_in,
            )
        elif isinstance(update, OptionsUpdate):
            self._emit(
                ExtensionOptions,
                update.at,
                extension=update.dn,
                enabled=update.enabled,
                external=update.external,
                recording=update.recording,
            )
        elif isinstance(update, DirectoryUpdate):
            self._learn(update.directory)
            self._emit(DirectorySnapshot, update.at, directory=update.directory)
        return self._out

    def _learn(self, directory: Directory) -> None:
        self.directory = directory
        self._did_names = {did.number: did.name for line in directory.lines for did in line.dids}
        entries = (*directory.extensions, *directory.queues, *directory.groups, *directory.ivrs)
        self._names = {entry.number: entry.name for entry in entries}
        self._parties.clear()  # names may have changed

    def _emit(self, kind: type[Event], at: datetime, **fields: Any) -> None:
        self._seq += 1
        self._out.append(kind(occurred_at=at, source=self._source, seq=self._seq, **fields))

    def _emit_call(self, kind: type[CallEvent], chain: _Chain, at: datetime, **fields: Any) -> None:
        self._emit(
            kind,
            at,
            chain_id=chain.chain_id,
            call_number=chain.call_number,
            direction=chain.direction,
            external_number=chain.external,
            did_name=chain.did_name,
            did_number=chain.did_number,
            **fields,
        )

    # --- participants ------------------------------------------------------------------------------

    def _participant(self, p: ParticipantUpdate) -> None:
        key = (p.dn, p.id)
        call = self._calls.get(p.callid)
        if p.removed:
            if call is None or key not in call.members:
                return  # a Remove for a participant never seen (or seen removed): nothing changes
            previous = call.members.pop(key)
            del call.views[key]
            self._presence(previous, None)
            if p.dn_type == EXTERNAL_LINE:
                self._chain_ends(call, p)
            elif call.chain is not None and p.dn == call.chain.talker:
                call.chain.talker_left = p.at
            if not call.members:
                del self._calls[p.callid]
            self._call_state(call, p.at)
            return
        if call is None:
            call = self._calls[p.callid] = _Call(p.callid, p.at)
        prior = call.members.get(key)
        if prior is not None and prior.same_entity(p):
            return
        call.members[key] = p
        call.views[key] = self._leg(p)
        self._presence(prior, p)
        if p.dn_type == EXTERNAL_LINE:
            self._external_leg(call, prior, p)
        elif p.dn_type == EXTENSION and call.chain is not None:
            self._extension_leg(call.chain, prior, p)
        self._call_state(call, p.at)

    def _presence(self, before: ParticipantUpdate | None, after: ParticipantUpdate | None) -> None:
        part = after or before
        assert part is not None
        if part.dn_type != EXTENSION:
            return
        delta = _active(after) - _active(before)
        if not delta:
            return
        count = self._active_legs.get(part.dn, 0) + delta
        if count:
            self._active_legs[part.dn] = count
        else:
            del self._active_legs[part.dn]
        if count == (1 if delta > 0 else 0):
            self._emit(ExtensionPresence, part.at, extension=part.dn, busy=delta > 0)

    def _external_leg(self, call: _Call, prior: ParticipantUpdate | None, p: ParticipantUpdate) -> None:
        chain = call.chain
        if chain is None:
            chain = call.chain = self._start_chain(call, p)
            return
        if p.referred_by_dn and (p.referred_by_dn, p.party_dn) != chain.referral:
            chain.referral = (p.referred_by_dn, p.party_dn)
            if chain.answered_at is not None and p.party_dn != chain.talker:
                self._end_link(chain, p.at, transferred=True)
                chain.link += 1
                chain.link_started, chain.answered_at, chain.talker = p.at, None, ""
                chain.next_transfer_type = "Blind"
        chain.routed_to = p.party_dn
        chain.routed_type = ROUTED_TYPES.get(p.party_dn_type, "extension")

    def _start_chain(self, call: _Call, p: ParticipantUpdate) -> _Chain:
        local = call.started.astimezone(self._zone)
        inbound = p.originated_by_type == EXTERNAL_LINE
        chain = _Chain(
            chain_id=f"{local:%y%m%d%H%M%S}_{call.callid}",
            call_number=call.callid,
            direction="inbound" if inbound else "outbound",
            external=p.party_caller_id,
            did_name=self._did_names.get(p.party_did, p.party_did) if inbound else "",
            did_number=p.party_did if inbound else "",
            routed_to=p.party_dn,
            routed_type=ROUTED_TYPES.get(p.party_dn_type, "extension"),
            originator=p.party_dn if not inbound else "",
            first_routed=p.party_dn,
            link_started=call.started,
        )
        call.chain_id, call.did = chain.chain_id, chain.did_number
        self._emit_call(CallStarted, chain, call.started, routed_to=p.party_dn)
        return chain

    def _extension_leg(self, chain: _Chain, prior: ParticipantUpdate | None, p: ParticipantUpdate) -> None:
        was = prior.status if prior is not None else None
        if p.status == "Ringing" and was != "Ringing" and p.dn != chain.originator:
            self._emit_call(
                CallRinging, chain, p.at, link=chain.link, extension=p.dn, user_type=self._user_type(chain, p)
            )
        if p.status != "Connected" or was == "Connected":
            return
        if chain.answered_at is None:
            chain.link = max(chain.link, 1)
            self._answered(chain, p, chain.next_transfer_type)
        elif p.dn != chain.talker and p.referred_by_dn and prior is None:
            self._end_link(chain, p.at, transferred=True)
            chain.link += 1
            self._answered(chain, p, "Accomp")
        elif not chain.talker:
            chain.talker, chain.talker_left = p.dn, None

    def _user_type(self, chain: _Chain, p: ParticipantUpdate) -> UserType:
        if p.on_behalf_of_type == QUEUE:
            return "queue"
        if not p.on_behalf_of_dn and p.dn == chain.routed_to:
            return "ext"
        return "other"

    def _answered(self, chain: _Chain, p: ParticipantUpdate, transfer_type: TransferType) -> None:
        chain.answered_at, chain.talker, chain.talker_left = p.at, p.dn, None
        chain.next_transfer_type = "NotDef"
        self._emit_call(
            CallAnswered, chain, p.at, link=chain.link, extension=p.dn, transfer_type=transfer_type
        )

    # --- ends ----------------------------------------------------------------------------------

    def _end_link(
        self,
        chain: _Chain,
        at: datetime,
        *,
        transferred: bool,
        chain_ended: bool = False,
        callback: bool = False,
    ) -> None:
        if chain.answered_at is not None:
            ended = chain.talker_left or at
            self._emit_call(
                CallEnded,
                chain,
                at,
                link=chain.link,
                extension=chain.talker or chain.routed_to,
                answered=True,
                transferred=transferred,
                chain_ended=chain_ended,
                duration=max((ended - chain.answered_at).total_seconds(), 0.0),
                routed_type="extension",
            )
            return
        assert chain.link_started is not None
        self._emit_call(
            CallEnded,
            chain,
            at,
            link=chain.link,
            extension=chain.routed_to,
            answered=False,
            transferred=transferred,
            chain_ended=chain_ended,
            duration=max((at - chain.link_started).total_seconds(), 0.0),
            routed_type=chain.routed_type,
            callback_requested=callback,
        )

    def _chain_ends(self, call: _Call, p: ParticipantUpdate) -> None:
        chain = call.chain
        if chain is None:
            return
        self._end_link(chain, p.at, transferred=False, chain_ended=True, callback=p.reason == "callback")
        call.chain = None

    # --- calls in progress ---------------------------------------------------------------------------

    def _call_state(self, call: _Call, at: datetime) -> None:
        legs = call.members.values()
        external: list[ParticipantUpdate] = []
        extensions: list[ParticipantUpdate] = []
        for p in legs:
            if p.dn_type == EXTERNAL_LINE:
                external.append(p)
            elif p.dn_type == EXTENSION:
                extensions.append(p)
        chain = call.chain
        caller = self._caller(call, external, extensions)
        others = [p for p in extensions if p.dn != caller.number]
        if external and caller.type != "external" and external[0].status == "Connected":
            talk_to = [self._party(external[0].party_caller_id, "external")]
        else:
            talk_to = [self._party(p.dn) for p in others if p.status == "Connected"]
        routing = [self._party(p.dn) for p in others if p.status == "Ringing"]
        if not routing and not talk_to:
            if external and caller.type != "external":
                routing = [self._party(external[0].party_caller_id, "external")]
            elif chain is not None and chain.routed_to and chain.routed_to != caller.number:
                routing = [self._party(chain.routed_to, ROUTED_PARTIES[chain.routed_type])]
        if talk_to and call.answered is None:
            call.answered = at
        leg_views = tuple(call.views.values())
        direction = self._direction(len(external), bool(others), caller)
        state = self._state_name(chain, caller, bool(talk_to), bool(external))
        seen = (
            direction,
            state,
            call.answered,
            caller,
            tuple(talk_to),
            tuple(routing),
            leg_views,
            call.chain_id,
        )
        if seen == call.seen and legs:
            return  # nothing an observer can see changed (a media reconnect, say)
        call.seen = seen
        self._emit(
            CallState,
            at,
            call_number=call.callid,
            chain_id=call.chain_id,
            direction=direction,
            state=state,
            started_at=call.started,
            answered_at=call.answered,
            did=call.did,
            owner=caller,
            talk_to=tuple(talk_to),
            routing_to=tuple(routing),
            legs=leg_views,
            ended=not legs,
        )

    def _leg(self, p: ParticipantUpdate) -> CallLeg:
        key = (p.dn, p.dn_type, p.status, p.party_caller_id)
        leg = self._leg_views.get(key)
        if leg is None:
            if len(self._leg_views) > VIEW_CACHE:
                self._leg_views.clear()
            leg = self._leg_views[key] = CallLeg(
                dn=p.dn,
                dn_type=PARTY_TYPES.get(p.dn_type, "extension"),
                status=p.status,
                external_party=p.party_caller_id,
            )
        return leg

    def _caller(
        self, call: _Call, external: list[ParticipantUpdate], extensions: list[ParticipantUpdate]
    ) -> CallParty:
        chain = call.chain
        if chain is not None and chain.direction == "inbound":
            return self._party(chain.external, "external")
        if chain is not None:
            return self._party(chain.originator)
        if not external and not extensions:  # the call has ended: nobody owns it any more
            return self._party("")
        first = (external or extensions)[0]
        if first.dn_type == EXTERNAL_LINE:
            return self._party(first.party_caller_id, "external")
        return self._party(first.originated_by_dn or first.dn)

    def _party(self, dn: str, kind: PartyType = "extension") -> CallParty:
        party = self._parties.get((dn, kind))
        if party is None:
            if len(self._parties) > VIEW_CACHE:
                self._parties.clear()
            party = self._parties[dn, kind] = CallParty(number=dn, name=self._names.get(dn, ""), type=kind)
        return party

    @staticmethod
    def _direction(externals: int, reached: bool, caller: CallParty) -> CallDirection:
        """`reached`: an extension other than the caller's is in the call."""
        if externals > 1:
            return "External"
        if caller.type == "external":
            return "Inbound" if reached else "FromExternal"
        if externals:
            return "Outbound"
        return "Internal" if reached else "FromInternal"

    @staticmethod
    def _state_name(chain: _Chain | None, caller: CallParty, talking: bool, external: bool) -> CallStateName:
        if talking:
            return "Talking"
        if chain is not None and chain.next_transfer_type == "Blind":
            return "Transferring"
        if caller.type == "external":
            return "Rerouting" if chain is not None and chain.routed_to != chain.first_routed else "Routing"
        if caller.number:
            return "Initiating"
        return "Unknown"


def _active(part: ParticipantUpdate | None) -> int:
    return int(part is not None and part.status != "Ringing")
