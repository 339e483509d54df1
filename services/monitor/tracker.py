"""The call tracker: PBX updates in, normalized bus events out. Pure: no I/O, no clock.

It follows the calls by the updates of `updates.py`, keyed by their PBX call number (3CX
`callid`), and hands each change to the rules that make events of it:

- a call with an external-party leg is a *chain*, whose classic events `chains.py` makes (the
  contract: docs/classic-webhooks.md); calls without one (extension to extension, the
  consultation leg of an attended transfer) are never reported as chains;
- every call, internal ones included, has a `pbx.call` state, published when the monitor asks
  (`publish_states`: many in one `pbx.calls` message; `call_states.py`);
- presence: an extension is busy while it has a Dialing or Connected leg on any call (published
  with the calls' states);
- the directory and the extensions' state changes (registration, forwarding, queue login,
  options) become their events as they come.

Every event carries the run's `source` and the next `seq`, contiguous.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.call_state import CallState
from shared.directory import Directory
from shared.event_base import Event
from shared.events import (
    CallsChanged,
    DirectorySnapshot,
    ExtensionForwarding,
    ExtensionOptions,
    ExtensionPresence,
    ExtensionQueueLogin,
    ExtensionRegistration,
)

from .call_states import CallStates, TrackedCall, fields
from .chains import ChainRules
from .checkpoint import save
from .updates import (
    EXTENSION,
    EXTERNAL_LINE,
    DirectoryUpdate,
    ForwardingUpdate,
    OptionsUpdate,
    ParticipantUpdate,
    PbxUpdate,
    QueueLoginUpdate,
    RegistrationUpdate,
)

STATES_MOST = 500  # call states in one `pbx.calls` message
Busy = dict[str, tuple[datetime, bool]]  # extension → (when, busy): presence not published yet


class CallTracker:
    def __init__(self, directory: Directory, *, zone: ZoneInfo, source: str, seq: int = 0) -> None:
        self._source = source
        self._seq = seq
        self._out: list[Event] = []
        self._calls: dict[int, TrackedCall] = {}
        self._touched: set[int] = set()  # the calls the last update changed
        self._active_legs: dict[str, int] = {}  # extension → Dialing/Connected legs on any call
        self._chains = ChainRules(self._emit, zone)
        self._states = CallStates()
        self._busy_changes: Busy = {}  # extension → (when, busy), not published yet
        self._resumed = False  # the next states name every call in progress and busy extension
        self._last_at: datetime | None = None  # the time of the last update
        self.directory = directory
        self._learn(directory)

    @property
    def source(self) -> str:
        return self._source

    @property
    def seq(self) -> int:
        """The sequence number of the last event made."""
        return self._seq

    @classmethod
    def resumed(
        cls, directory: Directory, calls: list[TrackedCall], *, zone: ZoneInfo, source: str, seq: int
    ) -> "CallTracker":
        """A tracker that goes on from a saved state (`checkpoint.py`): its calls in progress, the
        run's source and its last sequence number."""
        tracker = cls(directory, zone=zone, source=source, seq=seq)
        for call in calls:
            tracker._calls[call.callid] = call
            tracker._states.resumed(call)
            tracker._resumed = True
            for p in call.members.values():
                if p.dn_type == EXTENSION and _active(p):
                    tracker._active_legs[p.dn] = tracker._active_legs.get(p.dn, 0) + 1
        return tracker

    def participants(self) -> list[ParticipantUpdate]:
        """Every participant of the calls in progress, as last seen."""
        return [p for call in self._calls.values() for p in call.members.values()]

    @property
    def in_progress(self) -> int:
        """How many calls are in progress."""
        return len(self._calls)

    def current(self) -> tuple[tuple[CallState, ...], tuple[str, ...]]:
        """Every call in progress and every busy extension as they stand now, changes not
        published yet included (the monitor's snapshot: the states published later say the same
        or newer); the calls stamped with the last `seq`."""
        stamp = {"source": self._source, "seq": self._seq}
        calls = tuple(
            CallState(occurred_at=max(p.at for p in call.members.values()), **stamp, **fields(call))
            for call in self._calls.values()
        )
        return calls, tuple(sorted(self._active_legs))

    def changes(self) -> tuple[dict[int, str], list[int]]:
        """What the last burst changed, to save: (call number → its state, calls gone)."""
        saved = {n: save(self._calls[n]) for n in self._touched if n in self._calls}
        return saved, [n for n in self._touched if n not in self._calls]

    def apply(self, update: PbxUpdate) -> list[Event]:
        """The events `update` makes, in order, and the states it changed (tests, benchmarks)."""
        return self.apply_burst((update,)) + self.publish_states()

    @property
    def states_waiting(self) -> bool:
        """Whether a call's state or an extension's presence changed since `publish_states`."""
        return self._states.waiting or bool(self._busy_changes) or self._resumed

    def publish_states(self, most: int = STATES_MOST) -> list[Event]:
        """What changed since the last time, as it stands now: the state of each call changed and
        the presence of each extension changed, in `pbx.calls` messages of at most `most` calls.
        The first after a resume names every call in progress and every busy extension."""
        self._out = []
        taken, presence = self._states.take(), self._busy_changes
        resumed = self._resumed and bool(taken or presence or self._last_at)  # with a time to give
        if not (taken or presence or resumed):
            return self._out
        self._busy_changes, self._resumed = {}, False
        for start in range(0, max(len(taken), 1), most):
            first = start == 0
            self._changes(taken[start : start + most], presence if first else {}, resumed and first)
        return self._out

    def _changes(
        self,
        taken: list[tuple[datetime, dict[str, Any]]],
        presence: dict[str, tuple[datetime, bool]],
        whole: bool,
    ) -> None:
        """One `pbx.calls` message; `whole`: it names every call in progress and busy extension."""
        seq = self._seq + 1
        stamp = {"source": self._source, "seq": seq}
        calls = tuple(CallState(occurred_at=at, **stamp, **fields) for at, fields in taken)
        changes = tuple(
            ExtensionPresence(occurred_at=at, **stamp, extension=dn, busy=busy)
            for dn, (at, busy) in presence.items()
        )
        at = max((e.occurred_at for e in (*calls, *changes)), default=self._last_at)
        assert at is not None
        whole_state = (
            {"in_progress": tuple(self._calls), "busy": tuple(sorted(self._active_legs))} if whole else {}
        )
        self._emit(CallsChanged, at, calls=calls, presence=changes, **whole_state)

    def apply_burst(self, updates: Sequence[PbxUpdate]) -> list[Event]:
        """The events a burst of updates (what the PBX reported at once) makes, in order; the
        calls' states wait for `publish_states`."""
        self._out = []
        self._touched = set()
        if updates:
            self._last_at = updates[-1].at
        for update in updates:
            if isinstance(update, ParticipantUpdate):
                self._participant(update)
            elif isinstance(update, DirectoryUpdate):
                self._learn(update.directory)
                self._emit(DirectorySnapshot, update.at, directory=update.directory)
            else:
                self._state_change(update)
        return self._out

    def _state_change(self, update: PbxUpdate) -> None:
        if isinstance(update, RegistrationUpdate):
            self._emit(ExtensionRegistration, update.at, extension=update.dn, registered=update.registered)
        elif isinstance(update, ForwardingUpdate):
            self._emit(ExtensionForwarding, update.at, extension=update.dn, profile=update.profile)
        elif isinstance(update, QueueLoginUpdate):
            changed = {"queue": update.queue, "logged_in": update.logged_in}
            self._emit(ExtensionQueueLogin, update.at, extension=update.dn, **changed)
        elif isinstance(update, OptionsUpdate):
            options = {"enabled": update.enabled, "external": update.external, "recording": update.recording}
            self._emit(ExtensionOptions, update.at, extension=update.dn, **options)

    def _learn(self, directory: Directory) -> None:
        self.directory = directory
        self._chains.did_names = {did.number: did.name for line in directory.lines for did in line.dids}
        entries = (*directory.extensions, *directory.queues, *directory.groups, *directory.ivrs)
        self._states.renamed({entry.number: entry.name for entry in entries})

    def _emit(self, kind: type[Event], at: datetime, **fields: Any) -> None:
        self._seq += 1
        self._out.append(kind(occurred_at=at, source=self._source, seq=self._seq, **fields))

    # --- participants ------------------------------------------------------------------------------

    def _participant(self, p: ParticipantUpdate) -> None:
        self._touched.add(p.callid)
        call = self._calls.get(p.callid)
        if p.removed:
            if call is not None and (p.dn, p.id) in call.members:
                self._removed(call, p)
            return  # else a Remove for a participant never seen (or seen removed): nothing changes
        if call is None:
            call = self._calls[p.callid] = TrackedCall(p.callid, p.at)
        key = (p.dn, p.id)
        prior = call.members.get(key)
        if prior is not None and prior.same_entity(p):
            return
        call.members[key] = p
        call.views[key] = self._states.leg(p)
        self._presence(prior, p)
        if p.dn_type == EXTERNAL_LINE:
            if call.chain is None:
                call.chain = self._chains.start(call.callid, call.started, p)
                call.chain_id, call.did = call.chain.chain_id, call.chain.did_number
            else:
                self._chains.external_leg(call.chain, p)
        elif p.dn_type == EXTENSION and call.chain is not None:
            self._chains.extension_leg(call.chain, prior, p)
        self._states.publish(call, p.at)

    def _removed(self, call: TrackedCall, p: ParticipantUpdate) -> None:
        key = (p.dn, p.id)
        previous = call.members.pop(key)
        del call.views[key]
        self._presence(previous, None)
        if p.dn_type == EXTERNAL_LINE and call.chain is not None:
            self._chains.end(call.chain, p)
            call.chain = None
        elif p.dn_type != EXTERNAL_LINE and call.chain is not None:
            self._chains.talker_left(call.chain, p)
        if not call.members:
            del self._calls[p.callid]
        self._states.publish(call, p.at)

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
        turned = count == (1 if delta > 0 else 0)
        # published with the calls' states; a turn back cancels one not published yet
        if turned and self._busy_changes.pop(part.dn, None) is None:
            self._busy_changes[part.dn] = (part.at, delta > 0)


def _active(part: ParticipantUpdate | None) -> int:
    return int(part is not None and part.status != "Ringing")
