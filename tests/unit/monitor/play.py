"""Play scenario steps through the simulator and the tracker, purely, and collect the events."""

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from services.monitor.tracker import CallTracker
from shared.events import CallEvent, Event
from simulation.scenario import default_directory, parse_scenario
from simulation.simulator import PbxSimulator

UTC = ZoneInfo("UTC")


def play(
    steps: str, *, start: str = "2024-03-01T09:00:00", zone: ZoneInfo = UTC, first: int = 1
) -> list[Event]:
    document = {"start": start, "first_call_number": first, "steps": yaml.safe_load(steps)}
    scenario = parse_scenario(document, base=Path("."))
    simulator = PbxSimulator(scenario.directory, first_call_number=first)
    tracker = CallTracker(default_directory(), zone=zone, source="test")
    begin = datetime.fromisoformat(start).replace(tzinfo=zone)
    events: list[Event] = []
    for step in scenario.steps:
        for update in simulator.apply(step, begin + timedelta(seconds=step.t)):
            events += tracker.apply(update)
    return events


def calls(events: list[Event]) -> list[CallEvent]:
    return [e for e in events if isinstance(e, CallEvent) and e.type != "call.started"]


def brief(events: list[Event]) -> list[tuple[object, ...]]:
    """(type, classic id, extension, detail) of each ringing/answered/ended event."""
    out: list[tuple[object, ...]] = []
    for e in calls(events):
        detail = {"call.ringing": "user_type", "call.answered": "transfer_type"}.get(e.type)
        if detail:
            out.append((e.type[5:], e.call_id, e.extension, getattr(e, detail)))
        else:
            ok = "Ok" if e.answered else "Missed"
            out.append(
                (
                    "ended",
                    e.call_id,
                    e.extension,
                    ok,
                    e.transferred,
                    round(e.duration, 1),
                )
            )
    return out
