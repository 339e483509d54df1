"""The PBX simulator: scenario steps in, 3CX-shaped participant updates out.

`PbxSimulator.apply(step, at)` changes the simulated phone system and returns the updates a
real 3CX would cause (see `updates.py` for their meaning), or raises `ScenarioError` naming the
step when the step makes no sense at that moment. It also records answered external
conversations through a `WavRecorder`, one file per stretch. No I/O besides the recorder.
"""

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.monitor.updates import (
    EXTENSION,
    EXTERNAL_LINE,
    IVR,
    QUEUE,
    RING_GROUP,
    ForwardingUpdate,
    OptionsUpdate,
    ParticipantUpdate,
    PbxUpdate,
    QueueLoginUpdate,
    RegistrationUpdate,
    Status,
)
from shared.events import Directory, Extension

from .recorder import Stretch, WavRecorder
from .scenario import ScenarioError, Step

DN_TYPES = {"extension": EXTENSION, "queue": QUEUE, "group": RING_GROUP, "ivr": IVR}


@dataclass
class _Call:
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


class PbxSimulator:
    def __init__(
        self, directory: Directory, *, first_call_number: int = 1, recorder: WavRecorder | None = None
    ) -> None:
        self._extensions = {e.number: e for e in directory.extensions}
        self._directory = directory
        self._kinds: dict[str, str] = {e.number: "extension" for e in directory.extensions}
        self._kinds.update({q.number: "queue" for q in directory.queues})
        self._kinds.update({g.number: "group" for g in directory.groups})
        self._kinds.update({i.number: "ivr" for i in directory.ivrs})
        self._agents = {q.number: set(q.agents) for q in directory.queues}
        self._dids = {d.name: (line.number, d.number) for line in directory.lines for d in line.dids}
        self._outbound_line = directory.lines[0].number if directory.lines else ""
        self._recorder = recorder
        self._calls: dict[str, _Call] = {}  # calls in progress
        self._labels: set[str] = set()  # every label ever used: reusing one is an error
        self._next_call = first_call_number
        self._next_participant = 1000
        self._out: list[PbxUpdate] = []
        self._at: datetime | None = None
        self._step: Step | None = None

    @property
    def directory(self) -> Directory:
        """The directory with each extension's current state."""
        return self._directory.model_copy(update={"extensions": tuple(self._extensions.values())})

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    def call_number(self, label: str) -> int | None:
        call = self._calls.get(label)
        return call.callid if call else None

    def is_internal(self, dn: str) -> bool:
        return dn in self._kinds

    def apply(self, step: Step, at: datetime) -> list[PbxUpdate]:
        self._out, self._at, self._step = [], at, step
        getattr(self, f"_do_{step.do}")(step)
        return self._out

    # --- checks ------------------------------------------------------------------------------

    def _fail(self, message: str) -> ScenarioError:
        assert self._step is not None
        return ScenarioError(f"{self._step.describe()}: {message}")

    def _call(self, label: str) -> _Call:
        call = self._calls.get(label)
        if call is None:
            if label in self._labels:
                raise self._fail(f"call {label} has already ended")
            raise self._fail(f"unknown call label {label!r}")
        return call

    def _new_label(self, label: str) -> None:
        if label in self._labels:
            raise self._fail(f"call label {label!r} is already in use")

    def _dn(self, dn: str, *kinds: str) -> str:
        kind = self._kinds.get(dn)
        if kind is None:
            raise self._fail(f"DN {dn} is not in the directory")
        if kinds and kind not in kinds:
            raise self._fail(f"DN {dn} is a {kind}, not a {' or '.join(kinds)}")
        return kind

    def _talking(self, call: _Call, dn: str) -> ParticipantUpdate:
        part = call.parts.get(dn)
        if part is None or part.status != "Connected":
            raise self._fail(f"{dn} is not talking on call {call.label}")
        return part

    # --- emitting ----------------------------------------------------------------------------

    def _upsert(self, call: _Call, part: ParticipantUpdate) -> None:
        assert self._at is not None
        part = replace(part, at=self._at)
        if part.dn_type == EXTERNAL_LINE:
            call.leg = part
        else:
            call.parts[part.dn] = part
        self._out.append(part)

    def _remove(self, call: _Call, part: ParticipantUpdate, reason: str = "") -> None:
        assert self._at is not None
        if part.dn_type == EXTERNAL_LINE:
            call.leg = None
        else:
            call.parts.pop(part.dn, None)
            self._stop_recording(call, part.dn)
        self._out.append(replace(part, at=self._at, removed=True, reason=reason))

    def _participant(
        self, call: _Call, dn: str, dn_type: str, status: Status, **fields: Any
    ) -> ParticipantUpdate:
        assert self._at is not None
        self._next_participant += 1
        call.legs += 1
        originated = {
            "originated_by_dn": call.originator,
            "originated_by_type": EXTERNAL_LINE if call.kind == "incoming" else EXTENSION,
        }
        return ParticipantUpdate(
            at=self._at,
            dn=dn,
            dn_type=dn_type,
            id=self._next_participant,
            callid=call.callid,
            legid=call.legs,
            status=status,
            device_id=f"sip:{dn}@127.0.0.1:5060",
            **(originated | fields),
        )

    def _extension_leg(self, call: _Call, dn: str, status: Status, **fields: Any) -> ParticipantUpdate:
        """An extension's leg of an external call: its other party is the external caller."""
        return self._participant(
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

    def _route_leg(self, call: _Call, to: str, **fields: Any) -> None:
        assert call.leg is not None
        kind = self._kinds.get(to, "extension")
        self._upsert(
            call,
            replace(
                call.leg,
                party_dn=to,
                party_dn_type=DN_TYPES[kind],
                party_caller_name=self._name(to),
                **fields,
            ),
        )

    def _name(self, dn: str) -> str:
        extension = self._extensions.get(dn)
        return extension.name if extension else ""

    # --- recordings ---------------------------------------------------------------------------

    def _start_recording(self, call: _Call, dn: str) -> None:
        extension = self._extensions[dn]
        if self._recorder is None or call.kind == "internal" or extension.recording == "off":
            return
        assert self._at is not None
        caller, callee = (call.external, dn) if call.kind == "incoming" else (dn, call.external)
        call.stretches[dn] = Stretch(
            dn,
            call.callid,
            caller,
            callee,
            call.external if call.kind == "incoming" else "",
            self._at.replace(tzinfo=None),
        )

    def _stop_recording(self, call: _Call, dn: str) -> None:
        stretch = call.stretches.pop(dn, None)
        if stretch is not None and self._recorder is not None:
            assert self._at is not None
            self._recorder.write(stretch, self._at.replace(tzinfo=None))

    # --- calls appear ---------------------------------------------------------------------------

    def _open(self, label: str, kind: str, originator: str, **fields: Any) -> _Call:
        call = _Call(label, self._next_call, kind, originator, **fields)
        self._next_call += 1
        self._calls[label] = call
        self._labels.add(label)
        return call

    def _do_incoming(self, step: Step) -> None:
        self._new_label(step["call"])
        if step["did"] not in self._dids:
            raise self._fail(f"DID rule {step['did']!r} is not in the directory")
        kind = self._dn(step["to"], "extension", "queue", "group", "ivr")
        line, did = self._dids[step["did"]]
        call = self._open(
            step["call"],
            "incoming",
            line,
            external=step["from"],
            did_number=did,
            line=line,
            routed_to=step["to"],
        )
        leg = self._participant(
            call,
            line,
            EXTERNAL_LINE,
            "Ringing",
            party_caller_id=step["from"],
            party_dn=step["to"],
            party_dn_type=DN_TYPES[kind],
            party_caller_name=self._name(step["to"]),
            party_did=did,
        )
        self._upsert(call, leg)

    def _do_outgoing(self, step: Step) -> None:
        self._new_label(step["call"])
        self._dn(step["from"], "extension")
        if step["to"] in self._kinds:
            raise self._fail(f"{step['to']} is an internal DN; use an internal step")
        if not self._outbound_line:
            raise self._fail("the directory has no line to dial out on")
        call = self._open(
            step["call"],
            "outgoing",
            step["from"],
            external=step["to"],
            line=self._outbound_line,
            routed_to=step["from"],
        )
        self._dial_out(call)
        self._upsert(call, self._extension_leg(call, step["from"], "Dialing"))

    def _dial_out(self, call: _Call) -> None:
        """The trunk's leg of an outgoing call: dialling the outside number for the originator."""
        self._upsert(
            call,
            self._participant(
                call,
                call.line,
                EXTERNAL_LINE,
                "Dialing",
                party_caller_id=call.external,
                party_dn=call.originator,
                party_dn_type=EXTENSION,
                party_caller_name=self._name(call.originator),
            ),
        )

    def _do_internal(self, step: Step) -> None:
        self._new_label(step["call"])
        self._dn(step["from"], "extension")
        self._dn(step["to"], "extension")
        if step["from"] == step["to"]:
            raise self._fail("an extension cannot call itself")
        call = self._open(step["call"], "internal", step["from"], routed_to=step["to"])
        self._upsert(call, self._internal_leg(call, step["from"], step["to"], "Dialing"))

    def _do_makecall(self, step: Step) -> None:
        """Click to dial: extension `from` rings first; once it answers, it dials `to` (`_dial`)."""
        self._new_label(step["call"])
        first, second = step["from"], step["to"]
        if not self._extension(first).registered:
            raise self._fail(f"extension {first} is not registered: its phone cannot ring")
        if first == second:
            raise self._fail("an extension cannot call itself")
        if second in self._kinds:
            self._dn(second, "extension")
            call = self._open(step["call"], "internal", first, routed_to=second)
        elif not self._outbound_line:
            raise self._fail("the directory has no line to dial out on")
        else:
            call = self._open(
                step["call"], "outgoing", first, external=second, line=self._outbound_line, routed_to=first
            )
        call.dials_on_answer = True
        self._upsert(call, self._internal_leg(call, first, second, "Ringing"))

    def _dial(self, call: _Call) -> None:
        """The originator of a makecall picked up: the PBX dials the other party for it."""
        call.dials_on_answer = False
        ringing = call.parts[call.originator]
        if call.kind == "outgoing":
            self._dial_out(call)
            dialing = replace(
                ringing,
                party_caller_id=call.external,
                party_caller_name="",
                party_dn=call.line,
                party_dn_type=EXTERNAL_LINE,
            )
        else:
            dialing = ringing
        self._upsert(call, replace(dialing, status="Dialing"))

    def _internal_leg(self, call: _Call, dn: str, other: str, status: Status) -> ParticipantUpdate:
        return self._participant(
            call,
            dn,
            EXTENSION,
            status,
            party_caller_id=other,
            party_caller_name=self._name(other),
            party_dn=other,
            party_dn_type=EXTENSION,
        )

    # --- routing and ringing ----------------------------------------------------------------------

    def _do_route(self, step: Step) -> None:
        call = self._call(step["call"])
        kind = self._dn(step["to"], "extension", "queue", "group", "ivr")
        if call.kind == "outgoing" and not call.transferred:
            raise self._fail(f"call {call.label} is an outgoing call that the PBX does not route")
        if call.talking() and call.kind != "internal":
            raise self._fail(f"call {call.label} is answered; use transfer")
        for dn in call.ringing():
            self._remove(call, call.parts[dn])
        call.routed_to = step["to"]
        if call.leg is not None:
            self._route_leg(call, step["to"])
        elif kind != "extension":
            raise self._fail("an internal call can only be routed to an extension")

    def _do_ring(self, step: Step) -> None:
        call = self._call(step["call"])
        if call.dials_on_answer:
            raise self._fail(f"call {call.label} waits for {call.originator} to pick up before it dials")
        if call.kind == "outgoing" and not call.transferred:
            raise self._fail(f"call {call.label} is outgoing: no extension rings before a transfer")
        if call.kind != "internal" and call.talking():
            raise self._fail(
                f"call {call.label} is connected to {', '.join(call.talking())}; transfer it first"
            )
        routed_kind = self._kinds.get(call.routed_to, "extension")
        for dn in step["dn"]:
            self._dn(dn, "extension")
            if dn in call.parts:
                raise self._fail(f"{dn} is already {call.parts[dn].status.lower()} on call {call.label}")
            if call.kind == "internal":
                if dn == call.originator:
                    raise self._fail(f"{dn} is the caller of call {call.label}")
                self._upsert(call, self._internal_leg(call, dn, call.originator, "Ringing"))
                continue
            behalf = (
                {}
                if routed_kind == "extension"
                else {"on_behalf_of_dn": call.routed_to, "on_behalf_of_type": DN_TYPES[routed_kind]}
            )
            referred = (
                {"referred_by_dn": call.referred_by, "referred_by_type": EXTENSION}
                if call.referred_by
                else {}
            )
            self._upsert(call, self._extension_leg(call, dn, "Ringing", **behalf, **referred))

    def _do_stop_ring(self, step: Step) -> None:
        call = self._call(step["call"])
        part = call.parts.get(step["dn"])
        if part is None or part.status != "Ringing":
            raise self._fail(f"{step['dn']} is not ringing for call {call.label}")
        if call.dials_on_answer:  # the click-to-dial was not picked up: it ends there
            self._end(call)
            return
        self._remove(call, part)

    def _do_answer(self, step: Step) -> None:
        call = self._call(step["call"])
        dn = step["dn"]
        if dn == "external":
            if call.kind != "outgoing" or call.transferred:
                raise self._fail(
                    f"only the far end of an outgoing call answers as 'external'; {call.label} is not one"
                )
            dialer = call.parts.get(call.originator)
            if dialer is None or dialer.status != "Dialing":
                raise self._fail(f"call {call.label} is not dialling")
            assert call.leg is not None
            self._upsert(call, replace(call.leg, status="Connected"))
            self._upsert(call, replace(dialer, status="Connected"))
            self._start_recording(call, call.originator)
            return
        part = call.parts.get(dn)
        if part is None or part.status != "Ringing":
            raise self._fail(f"{dn} is not ringing for call {call.label}")
        if call.dials_on_answer:
            self._dial(call)
            return
        for other in call.ringing():
            if other != dn:
                self._remove(call, call.parts[other])
        self._upsert(call, replace(part, status="Connected"))
        if call.kind == "internal":
            self._upsert(call, replace(call.parts[call.originator], status="Connected"))
            return
        self._route_leg(call, dn, status="Connected")
        self._start_recording(call, dn)

    # --- transfers -----------------------------------------------------------------------------

    def _do_transfer(self, step: Step) -> None:
        call = self._call(step["call"])
        if call.kind == "internal":
            raise self._fail(f"call {call.label} has no external party to transfer")
        part = self._talking(call, step["by"])
        self._dn(step["to"], "extension", "queue", "group", "ivr")
        if step["to"] == step["by"]:
            raise self._fail(f"{step['by']} cannot transfer a call to itself")
        call.routed_to, call.referred_by, call.transferred = step["to"], step["by"], True
        self._route_leg(
            call, step["to"], status="Ringing", referred_by_dn=step["by"], referred_by_type=EXTENSION
        )
        self._remove(call, part)

    def _do_consult(self, step: Step) -> None:
        call = self._call(step["call"])
        if call.kind == "internal":
            raise self._fail(f"call {call.label} has no external party to hand over")
        self._talking(call, step["by"])
        self._dn(step["to"], "extension")
        if step["to"] in call.parts:
            raise self._fail(f"{step['to']} is already on call {call.label}")
        self._new_label(step["consult"])
        consult = self._open(step["consult"], "internal", step["by"], routed_to=step["to"])
        consult.consult_of = (call.label, step["by"], step["to"])
        call.held.add(step["by"])
        self._upsert(consult, self._internal_leg(consult, step["by"], step["to"], "Dialing"))

    def _do_complete(self, step: Step) -> None:
        call = self._call(step["call"])
        consult = self._call(step["consult"])
        if consult.consult_of is None or consult.consult_of[0] != call.label:
            raise self._fail(f"call {consult.label} is not a consultation of call {call.label}")
        _, by, to = consult.consult_of
        if consult.parts.get(to) is None or consult.parts[to].status != "Connected":
            raise self._fail(f"{to} has not answered the consultation call {consult.label}")
        transferor = self._talking(call, by)
        self._upsert(
            call, self._extension_leg(call, to, "Connected", referred_by_dn=by, referred_by_type=EXTENSION)
        )
        self._route_leg(call, to, status="Connected", referred_by_dn=by, referred_by_type=EXTENSION)
        call.referred_by, call.transferred = by, True
        call.held.discard(by)
        self._remove(call, transferor)
        self._start_recording(call, to)
        self._end(consult)

    # --- during a conversation --------------------------------------------------------------------

    def _do_hold(self, step: Step) -> None:
        call = self._call(step["call"])
        self._talking(call, step["by"])
        if step["by"] in call.held:
            raise self._fail(f"{step['by']} already holds call {call.label}")
        call.held.add(step["by"])  # 3CX has no Held status: nothing to emit, the recording goes on

    def _do_resume(self, step: Step) -> None:
        call = self._call(step["call"])
        self._talking(call, step["by"])
        if step["by"] not in call.held:
            raise self._fail(f"{step['by']} does not hold call {call.label}")
        call.held.discard(step["by"])

    def _do_reconnect(self, step: Step) -> None:
        call = self._call(step["call"])
        part = self._talking(call, step["dn"])
        self._upsert(
            call,
            replace(part, device_id=f"{part.device_id.split(';')[0]};rinstance={self._next_participant}"),
        )
        self._next_participant += 1
        if step["dn"] in call.stretches:
            self._stop_recording(call, step["dn"])
            self._start_recording(call, step["dn"])

    # --- calls end ---------------------------------------------------------------------------------

    def _do_callback(self, step: Step) -> None:
        call = self._call(step["call"])
        if call.kind != "incoming" or call.talking() or self._kinds.get(call.routed_to) != "queue":
            raise self._fail(f"call {call.label} is not waiting in a queue")
        self._end(call, reason="callback")

    def _do_hangup(self, step: Step) -> None:
        call = self._call(step["call"])
        by = step["by"]
        if by == "external":
            if call.kind == "internal":
                raise self._fail(f"call {call.label} has no external party")
            self._end(call)
            return
        self._dn(by, "extension")
        part = call.parts.get(by)
        if part is None:
            raise self._fail(f"{by} is not on call {call.label}")
        if part.status == "Ringing":
            raise self._fail(f"{by} is ringing, not talking, on call {call.label}; use stop_ring")
        self._remove(call, part)
        if call.kind == "internal" or not call.talking():
            self._end(call)

    def _end(self, call: _Call, reason: str = "") -> None:
        if call.leg is not None:
            self._remove(call, call.leg, reason)
        for part in list(call.parts.values()):
            self._remove(call, part)
        del self._calls[call.label]

    # --- PBX state -----------------------------------------------------------------------------

    def _extension(self, dn: str) -> Extension:
        self._dn(dn, "extension")
        return self._extensions[dn]

    def _do_register(self, step: Step) -> None:
        self._set(step["dn"], registered=True)
        assert self._at is not None
        self._out.append(RegistrationUpdate(self._at, step["dn"], True))

    def _do_unregister(self, step: Step) -> None:
        self._set(step["dn"], registered=False)
        assert self._at is not None
        self._out.append(RegistrationUpdate(self._at, step["dn"], False))

    def _do_set_forwarding(self, step: Step) -> None:
        self._set(step["dn"], profile=step["profile"])
        assert self._at is not None
        self._out.append(ForwardingUpdate(self._at, step["dn"], step["profile"]))

    def _do_set_options(self, step: Step) -> None:
        self._set(step["dn"], enabled=step["enabled"], external=step["external"], recording=step["recording"])
        assert self._at is not None
        self._out.append(
            OptionsUpdate(self._at, step["dn"], step["enabled"], step["external"], step["recording"])
        )

    def _do_queue_login(self, step: Step) -> None:
        extension = self._extension(step["dn"])
        queue, on = step["queue"], step["on"]
        if queue == "all":
            self._set(extension.number, queue_logged_in=on)
        else:
            self._dn(queue, "queue")
            if extension.number not in self._agents[queue]:
                raise self._fail(f"{extension.number} is not an agent of queue {queue}")
            out = set(extension.logged_out_queues)
            out = out - {queue} if on else out | {queue}
            self._set(extension.number, logged_out_queues=tuple(sorted(out)))
        assert self._at is not None
        self._out.append(QueueLoginUpdate(self._at, extension.number, queue, on))

    def _set(self, dn: str, **changes: object) -> Extension:
        extension = self._extension(dn).model_copy(update=changes)
        self._extensions[dn] = extension
        return extension
