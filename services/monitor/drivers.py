"""Monitor drivers: where PBX updates come from.

A driver is an async iterable of `PbxUpdate`s that starts with the directory. The simulator
drivers here play a scenario file or generated traffic on a `Clock` (virtual: as fast as
possible; system: in real time). The 3CX driver lives in `pbx.py` (a later issue).
"""

from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

from shared.clock import Clock
from shared.events import Directory

from .recorder import WavRecorder
from .scenario import Scenario, Step
from .simulator import PbxSimulator
from .updates import DirectoryUpdate, PbxUpdate


class Driver(Protocol):
    def updates(self) -> AsyncIterator[PbxUpdate]: ...


def check_scenario(scenario: Scenario) -> None:
    """Play the whole scenario on a scratch simulator: raises ScenarioError before anything is sent."""
    simulator = PbxSimulator(scenario.directory, first_call_number=scenario.first_call_number)
    start = scenario.start.replace(tzinfo=ZoneInfo("UTC"))
    for step in scenario.steps:
        simulator.apply(step, start + timedelta(seconds=step.t))


class SimulatorDriver:
    """Plays timed steps (a scenario's, or the traffic generator's) on the PBX simulator."""

    def __init__(
        self,
        directory: Directory,
        steps: Iterable[tuple[datetime, Step]],
        clock: Clock,
        *,
        first_call_number: int = 1,
        recordings: Path | None = None,
    ) -> None:
        self.simulator = PbxSimulator(
            directory,
            first_call_number=first_call_number,
            recorder=WavRecorder(recordings) if recordings else None,
        )
        self._steps = steps
        self._clock = clock

    @classmethod
    def for_scenario(
        cls, scenario: Scenario, clock: Clock, zone: ZoneInfo, recordings: Path | None = None
    ) -> "SimulatorDriver":
        start = scenario.start.replace(tzinfo=zone)
        timeline = ((start + timedelta(seconds=step.t), step) for step in scenario.steps)
        return cls(
            scenario.directory,
            timeline,
            clock,
            first_call_number=scenario.first_call_number,
            recordings=recordings,
        )

    async def updates(self) -> AsyncIterator[PbxUpdate]:
        yield DirectoryUpdate(self._clock.now(), self.simulator.directory)
        for at, step in self._steps:
            await self._clock.sleep_until(at)
            for update in self.simulator.apply(step, at):
                yield update
