"""Steps during and at the end of a conversation: transfers (blind and attended), hold and resume,
a media reconnect, a queue callback, hanging up."""

from dataclasses import replace

from services.monitor.updates import EXTENSION

from ..pbx import SimulatedPbx
from ..scenario import Step


def transfer(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    if call.kind == "internal":
        raise pbx.fail(f"call {call.label} has no external party to transfer")
    part = pbx.talking(call, step["by"])
    pbx.dn(step["to"], "extension", "queue", "group", "ivr")
    if step["to"] == step["by"]:
        raise pbx.fail(f"{step['by']} cannot transfer a call to itself")
    call.routed_to, call.referred_by, call.transferred = step["to"], step["by"], True
    pbx.route_leg(call, step["to"], status="Ringing", referred_by_dn=step["by"], referred_by_type=EXTENSION)
    pbx.remove(call, part)


def consult(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    if call.kind == "internal":
        raise pbx.fail(f"call {call.label} has no external party to hand over")
    pbx.talking(call, step["by"])
    pbx.dn(step["to"], "extension")
    if step["to"] in call.parts:
        raise pbx.fail(f"{step['to']} is already on call {call.label}")
    pbx.new_label(step["consult"])
    consult = pbx.open(step["consult"], "internal", step["by"], routed_to=step["to"])
    consult.consult_of = (call.label, step["by"], step["to"])
    call.held.add(step["by"])
    pbx.upsert(consult, pbx.internal_leg(consult, step["by"], step["to"], "Dialing"))


def complete(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    consult = pbx.call(step["consult"])
    if consult.consult_of is None or consult.consult_of[0] != call.label:
        raise pbx.fail(f"call {consult.label} is not a consultation of call {call.label}")
    _, by, to = consult.consult_of
    if consult.parts.get(to) is None or consult.parts[to].status != "Connected":
        raise pbx.fail(f"{to} has not answered the consultation call {consult.label}")
    transferor = pbx.talking(call, by)
    pbx.upsert(call, pbx.extension_leg(call, to, "Connected", referred_by_dn=by, referred_by_type=EXTENSION))
    pbx.route_leg(call, to, status="Connected", referred_by_dn=by, referred_by_type=EXTENSION)
    call.referred_by, call.transferred = by, True
    call.held.discard(by)
    pbx.remove(call, transferor)
    pbx.start_recording(call, to)
    pbx.end(consult)


def hold(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    pbx.talking(call, step["by"])
    if step["by"] in call.held:
        raise pbx.fail(f"{step['by']} already holds call {call.label}")
    call.held.add(step["by"])  # 3CX has no Held status: nothing to emit, the recording goes on


def resume(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    pbx.talking(call, step["by"])
    if step["by"] not in call.held:
        raise pbx.fail(f"{step['by']} does not hold call {call.label}")
    call.held.discard(step["by"])


def reconnect(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    part = pbx.talking(call, step["dn"])
    pbx.upsert(
        call,
        replace(part, device_id=f"{part.device_id.split(';')[0]};rinstance={pbx.next_participant}"),
    )
    pbx.next_participant += 1
    if step["dn"] in call.stretches:
        pbx.stop_recording(call, step["dn"])
        pbx.start_recording(call, step["dn"])


def callback(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    if call.kind != "incoming" or call.talking() or pbx.kinds.get(call.routed_to) != "queue":
        raise pbx.fail(f"call {call.label} is not waiting in a queue")
    pbx.end(call, reason="callback")


def hangup(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    by = step["by"]
    if by == "external":
        if call.kind == "internal":
            raise pbx.fail(f"call {call.label} has no external party")
        pbx.end(call)
        return
    pbx.dn(by, "extension")
    part = call.parts.get(by)
    if part is None:
        raise pbx.fail(f"{by} is not on call {call.label}")
    if part.status == "Ringing":
        raise pbx.fail(f"{by} is ringing, not talking, on call {call.label}; use stop_ring")
    pbx.remove(call, part)
    if call.kind == "internal" or not call.talking():
        pbx.end(call)
