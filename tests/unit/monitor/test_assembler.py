"""The 3CX assembler: the tracker fed with only what 3CX Call Control shows (extensions, callers
waiting in queues) and the external legs put together from it gives the example scenarios'
classic webhooks, as the simulator's full view does."""

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from services.monitor.scenario import load_scenario
from services.monitor.simulator import PbxSimulator
from services.monitor.threecx.assembler import CallAssembler
from services.monitor.threecx.fake import CallControlView
from services.monitor.tracker import CallTracker
from services.monitor.updates import DirectoryUpdate, ParticipantUpdate, PbxUpdate
from services.webhooks.classic import classic_payload
from shared.events import CallEvent, Event
from tests.conftest import SHARED, check_webhooks

EXAMPLES = ["queue-blind-transfer", "attended-transfer", "outgoing", "queue-callback"]


def through_call_control(name: str, *, empty_did: bool = False) -> list[Event]:
    scenario = load_scenario(SHARED / "scenarios" / f"{name}.yaml")
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


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_examples_through_what_call_control_shows(name: str, tmp_path: Path) -> None:
    assert check_webhooks(name, classic_lines(through_call_control(name)), tmp_path, recordings=False) == ""


def test_an_empty_party_did_is_filled_from_the_trunk(tmp_path: Path) -> None:
    # v20 sends party_did empty: the trunk's DID from XAPI stands in (its first DID: exact where a
    # trunk has one DID, which is why a DID per trunk, or party_did, is advised in the README)
    lines = classic_lines(through_call_control("queue-blind-transfer", empty_did=True))
    assert check_webhooks("queue-blind-transfer", lines, tmp_path, recordings=False) == ""
    brno = classic_lines(through_call_control("attended-transfer", empty_did=True))
    assert all('"did": "PragueDID"' in line for line in brno if '"did"' in line and "420603555777" in line)
