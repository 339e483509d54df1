"""The simulated phone system's state, and the moves the scenario steps are made of: look a call
or a DN up (or refuse the step, naming it), show a participant (an update a real 3CX would
cause), remove it, route the external party's leg, record a conversation. The steps themselves
are `steps/`; `simulator.py` plays them."""

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.monitor.updates import (
    EXTENSION,
    EXTERNAL_LINE,
    IVR,
    QUEUE,
    RING_GROUP,
    ParticipantUpdate,
    PbxUpdate,
    Status,
)
from shared.directory import Directory, Extension

from .recorder import Stretch, WavRecorder
from .scenario import ScenarioError, Step

ENDED_REMEMBERED = 10_000  # the latest ended calls' labels, refused if used again (traffic never ends)
DN_TYPES = {"extension": EXTENSION, "queue": QUEUE, "group": RING_GROUP, "ivr": IVR}


@dataclass(slots=True)
class Call:
    label: str
    callid: int
    kind: str  # incoming | outgoing | internal
    originator: str  # the dialling extension, or the trunk DN for incoming calls
    external: str = ""
    did_number: str = ""
    line: str = ""
    routed_to: str = ""
    leg: ParticipantUpdate | None = None  # the external party's leg (updates.py)
    parts: dict[str, ParticipantUpdate] = field(default_factory=dict)  # extension → its leg
    referred_by: str = ""
    transferred: bool = False
    held: set[str] = field(default_factory=set)
    consult_of: tuple[str, str, str] | None = None  # (parent label, by, to)
    stretches: dict[str, Stretch] = field(default_factory=dict)
    legs: int = 0
    dials_on_answer: bool = False  # a makecall: the originator's phone rings before it dials

    def talking(self) -> list[str]:
        return [dn for dn, p in self.parts.items() if p.status == "Connected"]

    def ringing(self) -> list[str]:
        return [dn for dn, p in self.parts.items() if p.status == "Ringing"]


class SimulatedPbx:
    def __init__(
        self, directory: Directory, *, first_call_number: int = 1, recorder: WavRecorder | None = None
    ) -> None:
        self.extensions = {e.number: e for e in directory.extensions}
        self._directory = directory
        self.kinds: dict[str, str] = {e.number: "extension" for e in directory.extensions}
        self.kinds.update({q.number: "queue" for q in directory.queues})
        self.kinds.update({g.number: "group" for g in directory.groups})
        self.kinds.update({i.number: "ivr" for i in directory.ivrs})
        self.agents = {q.number: set(q.agents) for q in directory.queues}
        self.dids = {d.name: (line.number, d.number) for line in directory.lines for d in line.dids}
        self.outbound_line = directory.lines[0].number if directory.lines else ""
        self._recorder = recorder
        self.calls: dict[str, Call] = {}  # calls in progress
        self._ended: dict[str, None] = {}  # labels of ended calls, the oldest first (ENDED_REMEMBERED)
        self._next_call = first_call_number
        self.next_participant = 1000
        self._out: list[PbxUpdate] = []
        self._at: datetime | None = None
        self._step: Step | None = None

    def fail(self, message: str) -> ScenarioError:
        assert self._step is not None
        return ScenarioError(f"{self._step.describe()}: {message}")

    def call(self, label: str) -> Call:
        call = self.calls.get(label)
        if call is None:
            if label in self._ended:
                raise self.fail(f"call {label} has already ended")
            raise self.fail(f"unknown call label {label!r}")
        return call

    def new_label(self, label: str) -> None:
        if label in self.calls or label in self._ended:
            raise self.fail(f"call label {label!r} is already in use")

    def dn(self, dn: str, *kinds: str) -> str:
        kind = self.kinds.get(dn)
        if kind is None:
            raise self.fail(f"DN {dn} is not in the directory")
        if kinds and kind not in kinds:
            raise self.fail(f"DN {dn} is a {kind}, not a {' or '.join(kinds)}")
        return kind

    def talking(self, call: Call, dn: str) -> ParticipantUpdate:
        part = call.parts.get(dn)
        if part is None or part.status != "Connected":
            raise self.fail(f"{dn} is not talking on call {call.label}")
        return part

    def upsert(self, call: Call, part: ParticipantUpdate) -> None:
        part = replace(part, at=self.at)
        if part.dn_type == EXTERNAL_LINE:
            call.leg = part
        else:
            call.parts[part.dn] = part
        self._out.append(part)

    def remove(self, call: Call, part: ParticipantUpdate, reason: str = "") -> None:
        if part.dn_type == EXTERNAL_LINE:
            call.leg = None
        else:
            call.parts.pop(part.dn, None)
            self.stop_recording(call, part.dn)
        self._out.append(replace(part, at=self.at, removed=True, reason=reason))

    def participant(
        self, call: Call, dn: str, dn_type: str, status: Status, **fields: Any
    ) -> ParticipantUpdate:
        self.next_participant += 1
        call.legs += 1
        originated = {
            "originated_by_dn": call.originator,
            "originated_by_type": EXTERNAL_LINE if call.kind == "incoming" else EXTENSION,
        }
        return ParticipantUpdate(
            at=self.at,
            dn=dn,
            dn_type=dn_type,
            id=self.next_participant,
            callid=call.callid,
            legid=call.legs,
            status=status,
            device_id=f"sip:{dn}@127.0.0.1:5060",
            **(originated | fields),
        )

    def extension_leg(self, call: Call, dn: str, status: Status, **fields: Any) -> ParticipantUpdate:
        """An extension's leg of an external call: its other party is the external caller."""
        return self.participant(
            call,
            dn,
            EXTENSION,
            status,
            party_caller_id=call.external,
            party_dn=call.line,
            party_dn_type=EXTERNAL_LINE,
            party_did=call.did_number,
            **fields,
        )

    def internal_leg(self, call: Call, dn: str, other: str, status: Status) -> ParticipantUpdate:
        return self.participant(
            call,
            dn,
            EXTENSION,
            status,
            party_caller_id=other,
            party_caller_name=self.name(other),
            party_dn=other,
            party_dn_type=EXTENSION,
        )

    def route_leg(self, call: Call, to: str, **fields: Any) -> None:
        assert call.leg is not None
        kind = self.kinds.get(to, "extension")
        self.upsert(
            call,
            replace(
                call.leg,
                party_dn=to,
                party_dn_type=DN_TYPES[kind],
                party_caller_name=self.name(to),
                **fields,
            ),
        )

    def name(self, dn: str) -> str:
        extension = self.extensions.get(dn)
        return extension.name if extension else ""

    def start_recording(self, call: Call, dn: str) -> None:
        extension = self.extensions[dn]
        if self._recorder is None or call.kind == "internal" or extension.recording == "off":
            return
        caller, callee = (call.external, dn) if call.kind == "incoming" else (dn, call.external)
        call.stretches[dn] = Stretch(
            dn,
            call.callid,
            caller,
            callee,
            call.external if call.kind == "incoming" else "",
            self.at.replace(tzinfo=None),
        )

    def stop_recording(self, call: Call, dn: str) -> None:
        stretch = call.stretches.pop(dn, None)
        if stretch is not None and self._recorder is not None:
            self._recorder.write(stretch, self.at.replace(tzinfo=None))

    def open(self, label: str, kind: str, originator: str, **fields: Any) -> Call:
        call = Call(label, self._next_call, kind, originator, **fields)
        self._next_call += 1
        self.calls[label] = call
        return call

    def end(self, call: Call, reason: str = "") -> None:
        if call.leg is not None:
            self.remove(call, call.leg, reason)
        for part in list(call.parts.values()):
            self.remove(call, part)
        del self.calls[call.label]
        self._ended[call.label] = None
        if len(self._ended) > ENDED_REMEMBERED:
            del self._ended[next(iter(self._ended))]

    def extension(self, dn: str) -> Extension:
        self.dn(dn, "extension")
        return self.extensions[dn]

    def set(self, dn: str, **changes: object) -> Extension:
        extension = self.extension(dn).model_copy(update=changes)
        self.extensions[dn] = extension
        return extension

    @property
    def at(self) -> datetime:
        """The moment of the step being played."""
        assert self._at is not None
        return self._at

    def begin(self, step: Step, at: datetime) -> None:
        """Play `step` at `at` next: what it causes is collected afresh."""
        self._out, self._at, self._step = [], at, step

    def emit(self, update: PbxUpdate) -> None:
        self._out.append(update)

    @property
    def emitted(self) -> list[PbxUpdate]:
        return self._out

    @property
    def directory(self) -> Directory:
        """The directory with each extension's current state."""
        return self._directory.model_copy(update={"extensions": tuple(self.extensions.values())})
