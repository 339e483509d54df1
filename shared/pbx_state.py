"""The PBX as the events tell it: directory, each extension's state, and the calls in progress.

One fold for everyone who needs the current state. The monitor folds the directory and the
extensions' events it publishes and answers the API's snapshot requests with them and its
tracker's calls; each API replica folds the same events into its own copy after starting from
such a snapshot. A `StateSnapshot` says up to which event of which monitor run it is complete
(`source`, `seq`), so a consumer knows which later events to apply.
"""

from pydantic import BaseModel, ConfigDict

from .call_state import CallState
from .directory import Directory, Extension, Ivr, Line, Queue, RingGroup
from .event_base import Event
from .events import (
    CallsChanged,
    DirectorySnapshot,
    ExtensionForwarding,
    ExtensionOptions,
    ExtensionPresence,
    ExtensionQueueLogin,
    ExtensionRegistration,
    unpacked,
)

# The event types that change the state; all of them come from the monitor, numbered by `seq`.
STATE_EVENTS = frozenset(
    {"pbx.directory", "pbx.call", "pbx.calls", "extension.registration", "extension.presence"}
    | {"extension.forwarding", "extension.queue_login", "extension.options"}
)


class StateSnapshot(BaseModel):
    """The monitor's state after its event `seq` (the RPC answer the API starts from)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    source: str
    seq: int
    directory: Directory
    busy: tuple[str, ...] = ()
    calls: tuple[CallState, ...] = ()


class PbxState:
    def __init__(self, directory: Directory | None = None) -> None:
        self._directory = directory or Directory()
        self.extensions: dict[str, Extension] = {e.number: e for e in self._directory.extensions}
        self.busy: set[str] = set()
        self.calls: dict[int, CallState] = {}

    @classmethod
    def from_snapshot(cls, snapshot: StateSnapshot) -> "PbxState":
        state = cls(snapshot.directory)
        state.busy = set(snapshot.busy)
        state.calls = {call.call_number: call for call in snapshot.calls}
        return state

    def snapshot(self, source: str, seq: int) -> StateSnapshot:
        return StateSnapshot(
            source=source,
            seq=seq,
            directory=self.directory,
            busy=tuple(sorted(self.busy)),
            calls=tuple(self.calls.values()),
        )

    @property
    def directory(self) -> Directory:
        """The directory with each extension's current state."""
        return self._directory.model_copy(update={"extensions": tuple(self.extensions.values())})

    @property
    def queues(self) -> tuple[Queue, ...]:
        return self._directory.queues

    @property
    def groups(self) -> tuple[RingGroup, ...]:
        return self._directory.groups

    @property
    def ivrs(self) -> tuple[Ivr, ...]:
        return self._directory.ivrs

    @property
    def lines(self) -> tuple[Line, ...]:
        return self._directory.lines

    def apply(self, event: Event) -> None:
        """Fold one event in; events that do not describe the PBX are ignored."""
        if isinstance(event, CallsChanged):
            self._calls_changed(event)
        elif isinstance(event, CallState):
            if event.ended:
                self.calls.pop(event.call_number, None)
            else:
                self.calls[event.call_number] = event
        elif isinstance(event, ExtensionPresence):
            (self.busy.add if event.busy else self.busy.discard)(event.extension)
        elif isinstance(event, ExtensionRegistration):
            self._change(event.extension, registered=event.registered)
        elif isinstance(event, ExtensionForwarding):
            self._change(event.extension, profile=event.profile)
        elif isinstance(event, ExtensionOptions):
            self._change(
                event.extension, enabled=event.enabled, external=event.external, recording=event.recording
            )
        elif isinstance(event, ExtensionQueueLogin):
            self._queue_login(event)
        elif isinstance(event, DirectorySnapshot):
            self._directory = event.directory
            self.extensions = {e.number: e for e in event.directory.extensions}

    def _calls_changed(self, event: CallsChanged) -> None:
        if event.in_progress is not None:
            kept = set(event.in_progress)
            self.calls = {n: call for n, call in self.calls.items() if n in kept}
        if event.busy is not None:
            self.busy = set(event.busy)
        for each in unpacked(event):
            self.apply(each)

    def _change(self, number: str, **changes: object) -> None:
        extension = self.extensions.get(number)
        if extension is not None:
            self.extensions[number] = extension.model_copy(update=changes)

    def _queue_login(self, event: ExtensionQueueLogin) -> None:
        extension = self.extensions.get(event.extension)
        if extension is None:
            return
        if event.queue == "all":
            self._change(event.extension, queue_logged_in=event.logged_in)
            return
        out = set(extension.logged_out_queues)
        out = out - {event.queue} if event.logged_in else out | {event.queue}
        self._change(event.extension, logged_out_queues=tuple(sorted(out)))
