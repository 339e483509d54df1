"""Calls in progress as the API shows them (`pbx.call`): every call, internal ones included,
published after updates that changed what an observer can see, and a last time with `ended` when
its last leg leaves. `CallState` (shared/call_state.py) documents its direction and state. Pure:
no I/O, no clock.

A change is noted (`publish`) and the state published later, as it stands then (`take`): the
monitor gathers the changes of up to `[monitor] states_every` seconds into one `pbx.calls`
message, so a call that rings three agents and is answered within that time costs one state,
and a hundred calls that changed cost one message.

The views (a call's parties and legs) are immutable and made once: a busy PBX repeats the same
few, and a state that shows nothing new is not published again."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.call_state import CallLeg, CallParty, CallStateDirection, CallStateName, PartyType

from .chains import Chain
from .updates import EXTENSION, EXTERNAL_LINE, IVR, QUEUE, RING_GROUP, ParticipantUpdate

PARTY_TYPES: dict[str, PartyType] = {
    EXTENSION: "extension",
    QUEUE: "queue",
    RING_GROUP: "group",
    IVR: "ivr",
    EXTERNAL_LINE: "line",
}
VIEW_CACHE = 10_000  # parties and legs kept for reuse before the caches start again


@dataclass(slots=True)
class TrackedCall:
    """One PBX call (its call number) and the participants it has now."""

    callid: int
    started: datetime
    members: dict[tuple[str, int], ParticipantUpdate] = field(default_factory=dict)
    chain: Chain | None = None
    chain_id: str = ""
    did: str = ""
    answered: datetime | None = None
    queues: tuple[str, ...] = ()  # the queues it has waited in
    seen: tuple[Any, ...] = ()  # what its last published state showed
    views: dict[tuple[str, int], CallLeg] = field(default_factory=dict)  # each member's CallLeg


class CallStates:
    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # DN → its name (from the directory)
        self._parties: dict[tuple[str, PartyType], CallParty] = {}
        self._leg_views: dict[tuple[str, str, str, str], CallLeg] = {}
        self._pending: dict[int, tuple[TrackedCall, datetime]] = {}  # call number → (call, last change)

    def renamed(self, names: dict[str, str]) -> None:
        self.names = names
        self._parties.clear()  # names may have changed

    def leg(self, p: ParticipantUpdate) -> CallLeg:
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

    def publish(self, call: TrackedCall, at: datetime) -> None:
        """Note the call's state for the end of the burst, unless nothing an observer can see
        changed (a media reconnect, say)."""
        seen = self._view(call, at)
        if seen == call.seen and call.members:
            return
        call.seen = seen
        self._pending.pop(call.callid, None)  # in the order of their last change
        self._pending[call.callid] = (call, at)

    @property
    def waiting(self) -> bool:
        """Whether a change waits to be published."""
        return bool(self._pending)

    def take(self) -> list[tuple[datetime, dict[str, Any]]]:
        """The state of each call changed since the last `take`, as it stands now, in the order
        of their last change: (when it changed, the `CallState` fields)."""
        taken = [(at, fields(call)) for call, at in self._pending.values()]
        self._pending.clear()
        return taken

    def resumed(self, call: TrackedCall) -> None:
        """A call restored from a checkpoint, published again: a change noted before the stop
        may not have been."""
        call.views = {key: self.leg(p) for key, p in call.members.items()}
        self.publish(call, max((p.at for p in call.members.values()), default=call.started))

    def _view(self, call: TrackedCall, at: datetime) -> tuple[Any, ...]:
        """What an observer sees of the call (the state event's fields); the first time someone
        talks, the call is answered `at`."""
        external = [p for p in call.members.values() if p.dn_type == EXTERNAL_LINE]
        extensions = [p for p in call.members.values() if p.dn_type == EXTENSION]
        caller = self._caller(call, external, extensions)
        others = [p for p in extensions if p.dn != caller.number]
        talk_to, routing = self._parties_of(call.chain, caller, external, others)
        if talk_to and call.answered is None:
            call.answered = at
        chain = call.chain
        if chain is not None and chain.routed_type == "queue" and chain.routed_to not in call.queues:
            call.queues += (chain.routed_to,)
        legs = tuple(call.views.values())
        direction = _direction(len(external), bool(others), caller)
        state = _state_name(call.chain, caller, bool(talk_to))
        return (direction, state, call.answered, caller, talk_to, routing, legs, call.chain_id)

    def _parties_of(
        self,
        chain: Chain | None,
        caller: CallParty,
        external: list[ParticipantUpdate],
        others: list[ParticipantUpdate],
    ) -> tuple[tuple[CallParty, ...], tuple[CallParty, ...]]:
        """(who the caller talks to, where the call is routed while nobody talks)."""
        outside = [self._party(external[0].party_caller_id, "external")] if external else []
        if outside and caller.type != "external" and external[0].status == "Connected":
            talk_to = outside
        else:
            talk_to = [self._party(p.dn) for p in others if p.status == "Connected"]
        routing = [self._party(p.dn) for p in others if p.status == "Ringing"]
        if not routing and not talk_to:
            if outside and caller.type != "external":
                routing = outside
            elif chain is not None and chain.routed_to and chain.routed_to != caller.number:
                routing = [self._party(chain.routed_to, ROUTED_PARTIES[chain.routed_type])]
        return tuple(talk_to), tuple(routing)

    def _caller(
        self, call: TrackedCall, external: list[ParticipantUpdate], extensions: list[ParticipantUpdate]
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
            party = self._parties[dn, kind] = CallParty(number=dn, name=self.names.get(dn, ""), type=kind)
        return party


ROUTED_PARTIES: dict[str, PartyType] = {
    "extension": "extension",
    "queue": "queue",
    "group": "group",
    "ivr": "ivr",
    "external": "external",
}


def fields(call: TrackedCall) -> dict[str, Any]:
    """The `CallState` fields of what `call` showed when its state was last noted (`publish`)."""
    direction, state, _, caller, talk_to, routing, legs, _ = call.seen
    return {
        "call_number": call.callid,
        "chain_id": call.chain_id,
        "direction": direction,
        "state": state,
        "started_at": call.started,
        "answered_at": call.answered,
        "did": call.did,
        "owner": caller,
        "talk_to": talk_to,
        "routing_to": routing,
        "legs": legs,
        "queues": call.queues,
        "ended": not call.members,
    }


def _direction(externals: int, reached: bool, caller: CallParty) -> CallStateDirection:
    """`reached`: an extension other than the caller's is in the call."""
    if externals > 1:
        return "External"
    if caller.type == "external":
        return "Inbound" if reached else "FromExternal"
    if externals:
        return "Outbound"
    return "Internal" if reached else "FromInternal"


def _state_name(chain: Chain | None, caller: CallParty, talking: bool) -> CallStateName:
    if talking:
        return "Talking"
    if chain is not None and chain.next_transfer_type == "Blind":
        return "Transferring"
    if caller.type == "external":
        return "Rerouting" if chain is not None and chain.routed_to != chain.first_routed else "Routing"
    if caller.number:
        return "Initiating"
    return "Unknown"
