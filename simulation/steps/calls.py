"""Steps that bring a call about and get it answered: incoming, outgoing, internal and click-to-dial
calls, routing, ringing, answering."""

from dataclasses import replace

from services.monitor.updates import EXTENSION, EXTERNAL_LINE

from ..pbx import DN_TYPES, Call, SimulatedPbx
from ..scenario import Step


def incoming(pbx: SimulatedPbx, step: Step) -> None:
    pbx.new_label(step["call"])
    if step["did"] not in pbx.dids:
        raise pbx.fail(f"DID rule {step['did']!r} is not in the directory")
    kind = pbx.dn(step["to"], "extension", "queue", "group", "ivr")
    line, did = pbx.dids[step["did"]]
    call = pbx.open(
        step["call"],
        "incoming",
        line,
        external=step["from"],
        did_number=did,
        line=line,
        routed_to=step["to"],
    )
    leg = pbx.participant(
        call,
        line,
        EXTERNAL_LINE,
        "Ringing",
        party_caller_id=step["from"],
        party_dn=step["to"],
        party_dn_type=DN_TYPES[kind],
        party_caller_name=pbx.name(step["to"]),
        party_did=did,
    )
    pbx.upsert(call, leg)


def outgoing(pbx: SimulatedPbx, step: Step) -> None:
    pbx.new_label(step["call"])
    pbx.dn(step["from"], "extension")
    if step["to"] in pbx.kinds:
        raise pbx.fail(f"{step['to']} is an internal DN; use an internal step")
    if not pbx.outbound_line:
        raise pbx.fail("the directory has no line to dial out on")
    call = pbx.open(
        step["call"],
        "outgoing",
        step["from"],
        external=step["to"],
        line=pbx.outbound_line,
        routed_to=step["from"],
    )
    _dial_out(pbx, call)
    pbx.upsert(call, pbx.extension_leg(call, step["from"], "Dialing"))


def _dial_out(pbx: SimulatedPbx, call: Call) -> None:
    """The trunk's leg of an outgoing call: dialling the outside number for the originator."""
    pbx.upsert(
        call,
        pbx.participant(
            call,
            call.line,
            EXTERNAL_LINE,
            "Dialing",
            party_caller_id=call.external,
            party_dn=call.originator,
            party_dn_type=EXTENSION,
            party_caller_name=pbx.name(call.originator),
        ),
    )


def internal(pbx: SimulatedPbx, step: Step) -> None:
    pbx.new_label(step["call"])
    pbx.dn(step["from"], "extension")
    pbx.dn(step["to"], "extension")
    if step["from"] == step["to"]:
        raise pbx.fail("an extension cannot call itself")
    call = pbx.open(step["call"], "internal", step["from"], routed_to=step["to"])
    pbx.upsert(call, pbx.internal_leg(call, step["from"], step["to"], "Dialing"))


def makecall(pbx: SimulatedPbx, step: Step) -> None:
    """Click to dial: extension `from` rings first; once it answers, it dials `to` (`_dial`)."""
    pbx.new_label(step["call"])
    first, second = step["from"], step["to"]
    if not pbx.extension(first).registered:
        raise pbx.fail(f"extension {first} is not registered: its phone cannot ring")
    if first == second:
        raise pbx.fail("an extension cannot call itself")
    if second in pbx.kinds:
        pbx.dn(second, "extension")
        call = pbx.open(step["call"], "internal", first, routed_to=second)
    elif not pbx.outbound_line:
        raise pbx.fail("the directory has no line to dial out on")
    else:
        call = pbx.open(
            step["call"], "outgoing", first, external=second, line=pbx.outbound_line, routed_to=first
        )
    call.dials_on_answer = True
    pbx.upsert(call, pbx.internal_leg(call, first, second, "Ringing"))


def _dial(pbx: SimulatedPbx, call: Call) -> None:
    """The originator of a makecall picked up: the PBX dials the other party for it."""
    call.dials_on_answer = False
    ringing = call.parts[call.originator]
    if call.kind == "outgoing":
        _dial_out(pbx, call)
        dialing = replace(
            ringing,
            party_caller_id=call.external,
            party_caller_name="",
            party_dn=call.line,
            party_dn_type=EXTERNAL_LINE,
        )
    else:
        dialing = ringing
    pbx.upsert(call, replace(dialing, status="Dialing"))


def route(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    kind = pbx.dn(step["to"], "extension", "queue", "group", "ivr")
    if call.kind == "outgoing" and not call.transferred:
        raise pbx.fail(f"call {call.label} is an outgoing call that the PBX does not route")
    if call.talking() and call.kind != "internal":
        raise pbx.fail(f"call {call.label} is answered; use transfer")
    for dn in call.ringing():
        pbx.remove(call, call.parts[dn])
    call.routed_to = step["to"]
    if call.leg is not None:
        pbx.route_leg(call, step["to"])
    elif kind != "extension":
        raise pbx.fail("an internal call can only be routed to an extension")


def ring(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    if call.dials_on_answer:
        raise pbx.fail(f"call {call.label} waits for {call.originator} to pick up before it dials")
    if call.kind == "outgoing" and not call.transferred:
        raise pbx.fail(f"call {call.label} is outgoing: no extension rings before a transfer")
    if call.kind != "internal" and call.talking():
        raise pbx.fail(f"call {call.label} is connected to {', '.join(call.talking())}; transfer it first")
    routed_kind = pbx.kinds.get(call.routed_to, "extension")
    for dn in step["dn"]:
        pbx.dn(dn, "extension")
        if dn in call.parts:
            raise pbx.fail(f"{dn} is already {call.parts[dn].status.lower()} on call {call.label}")
        if call.kind == "internal":
            if dn == call.originator:
                raise pbx.fail(f"{dn} is the caller of call {call.label}")
            pbx.upsert(call, pbx.internal_leg(call, dn, call.originator, "Ringing"))
            continue
        behalf = (
            {}
            if routed_kind == "extension"
            else {"on_behalf_of_dn": call.routed_to, "on_behalf_of_type": DN_TYPES[routed_kind]}
        )
        referred = (
            {"referred_by_dn": call.referred_by, "referred_by_type": EXTENSION} if call.referred_by else {}
        )
        pbx.upsert(call, pbx.extension_leg(call, dn, "Ringing", **behalf, **referred))


def stop_ring(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    part = call.parts.get(step["dn"])
    if part is None or part.status != "Ringing":
        raise pbx.fail(f"{step['dn']} is not ringing for call {call.label}")
    if call.dials_on_answer:  # the click-to-dial was not picked up: it ends there
        pbx.end(call)
        return
    pbx.remove(call, part)


def answer(pbx: SimulatedPbx, step: Step) -> None:
    call = pbx.call(step["call"])
    dn = step["dn"]
    if dn == "external":
        if call.kind != "outgoing" or call.transferred:
            raise pbx.fail(
                f"only the far end of an outgoing call answers as 'external'; {call.label} is not one"
            )
        dialer = call.parts.get(call.originator)
        if dialer is None or dialer.status != "Dialing":
            raise pbx.fail(f"call {call.label} is not dialling")
        assert call.leg is not None
        pbx.upsert(call, replace(call.leg, status="Connected"))
        pbx.upsert(call, replace(dialer, status="Connected"))
        pbx.start_recording(call, call.originator)
        return
    part = call.parts.get(dn)
    if part is None or part.status != "Ringing":
        raise pbx.fail(f"{dn} is not ringing for call {call.label}")
    if call.dials_on_answer:
        _dial(pbx, call)
        return
    for other in call.ringing():
        if other != dn:
            pbx.remove(call, call.parts[other])
    pbx.upsert(call, replace(part, status="Connected"))
    if call.kind == "internal":
        pbx.upsert(call, replace(call.parts[call.originator], status="Connected"))
        return
    pbx.route_leg(call, dn, status="Connected")
    pbx.start_recording(call, dn)
