"""The 3CX assembler: the tracker fed with only what 3CX Call Control shows (extensions, callers
waiting in queues) and the external legs put together from it gives the example scenarios'
classic webhooks, as the simulator's full view does."""

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.monitor.threecx.assembler import CallAssembler
from services.monitor.tracker import CallTracker
from services.monitor.updates import DirectoryUpdate, ParticipantUpdate, PbxUpdate
from services.webhooks.classic import classic_payload
from shared.event_base import Event
from shared.events import CallEvent
from simulation.call_control import CallControlView
from simulation.scenario import load_scenario
from simulation.simulator import PbxSimulator
from tests.conftest import EXAMPLES, check_webhooks

NAMES = sorted(p.name.removesuffix(".expected.jsonl") for p in EXAMPLES.glob("*.expected.jsonl"))


def through_call_control(name: str, *, empty_did: bool = False) -> list[Event]:
    scenario = load_scenario(EXAMPLES / f"{name}.yaml")
    start = scenario.start.replace(tzinfo=ZoneInfo("UTC"))
    simulator = PbxSimulator(scenario.directory, first_call_number=scenario.first_call_number)
    view = CallControlView(empty_did=empty_did)
    trunk_dids = {line.number: line.dids[0].number for line in scenario.directory.lines if line.dids}
    assembler = CallAssembler(dids=trunk_dids)
    tracker = CallTracker(scenario.directory, zone=ZoneInfo("UTC"), source="3cx")
    events = tracker.apply(DirectoryUpdate(start, scenario.directory))

    def feed(updates: list[PbxUpdate]) -> None:
        for update in updates:
            if isinstance(update, ParticipantUpdate) and assembler.ended_waiting_in_a_queue(update):
                # what the driver asks XAPI's queue callback report (the fake serves view.callbacks)
                ordered = any(
                    q == update.party_dn and abs((t - update.at).total_seconds()) < 5
                    for q, t in view.callbacks
                )
                update = replace(update, reason="callback" if ordered else "")
            events.extend(tracker.apply(update))

    for step in scenario.steps:
        at = start + timedelta(seconds=step.t)
        feed(list(assembler.expire(at)))
        for update in simulator.apply(step, at):
            for shown in view.show(update):
                feed(assembler.apply(shown))
    feed(list(assembler.expire(datetime.max.replace(tzinfo=ZoneInfo("UTC")))))
    return events


def classic_lines(events: list[Event]) -> list[str]:
    import json

    return [json.dumps(w) for e in events if isinstance(e, CallEvent) and (w := classic_payload(e))]


@pytest.mark.parametrize("name", NAMES)
def test_the_examples_through_what_call_control_shows(name: str) -> None:
    assert check_webhooks(name, classic_lines(through_call_control(name)), recordings=False) == ""


def test_an_empty_party_did_is_filled_from_the_trunk() -> None:
    # v20 sends party_did empty: the trunk's DID from XAPI stands in (its first DID: exact where a
    # trunk has one DID, which is why a DID per trunk, or party_did, is advised in the README)
    lines = classic_lines(through_call_control("queue-to-queue-transfer", empty_did=True))
    first, second = "447700900101", "447700907777"  # on MainLine, Trunk North's first DID; on SupportLine
    assert all('"did": "MainLine"' in line for line in lines if '"did"' in line and first in line)
    assert all('"did": "MainLine"' in line for line in lines if '"did"' in line and second in line)
    south = classic_lines(through_call_control("recording-variants", empty_did=True))  # SalesLine: alone
    assert [line for line in south if '"did"' in line and "447700905555" in line]
    assert all('"did": "SalesLine"' in line for line in south if '"did"' in line and "447700905555" in line)


T0 = datetime(2026, 1, 5, 8, 0, tzinfo=ZoneInfo("UTC"))


def phone(callid: int, at: float, *, removed: bool = False) -> ParticipantUpdate:
    """Extension 1xx talking with an outside caller on call `callid` (its one visible participant)."""
    return ParticipantUpdate(
        at=T0 + timedelta(seconds=at),
        dn=str(100 + callid),
        dn_type="Wextension",
        id=callid,
        callid=callid,
        legid=1,
        status="Connected",
        party_caller_id=f"+4930{callid:05d}",
        party_dn="10000",
        party_dn_type="Wexternalline",
        removed=removed,
    )


def test_calls_that_empty_end_each_after_its_own_grace_in_the_order_they_emptied() -> None:
    """`expire` and `next_expiry` look only at the calls that emptied (a heap), not at every call:
    a blind transfer that fills a call again within the grace keeps it, and a call that empties
    again waits its grace from then."""
    assembler = CallAssembler(grace=2.0)
    for callid in range(1, 1001):
        assert [u.id for u in assembler.apply(phone(callid, 0))] == [
            -callid,
            callid,
        ]  # the leg, then the phone
    assert assembler.next_expiry() is None
    assembler.apply(phone(7, 1, removed=True))
    assembler.apply(phone(3, 2, removed=True))
    assembler.apply(phone(3, 3))  # filled again within its grace: handed on
    assembler.apply(phone(3, 4, removed=True))
    assert assembler.member("107", 7) is None and assembler.member("105", 5) == phone(5, 0)
    assert assembler.next_expiry() == T0 + timedelta(seconds=3)
    assert assembler.expire(T0 + timedelta(seconds=2.9)) == []
    [seven] = assembler.expire(T0 + timedelta(seconds=5.9))
    assert (seven.id, seven.removed, seven.at) == (-7, True, T0 + timedelta(seconds=1))
    assert assembler.next_expiry() == T0 + timedelta(seconds=6)
    [three] = assembler.expire(T0 + timedelta(seconds=6))
    assert (three.id, three.at) == (-3, T0 + timedelta(seconds=4))
    assert assembler.next_expiry() is None and len(assembler.members()) == 998
