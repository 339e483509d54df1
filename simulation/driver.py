"""The simulator as a monitor driver (services/monitor/driver.py): it plays a scenario file or
generated traffic on a `Clock` (virtual: as fast as possible; scaled: in real time or faster)
and carries out the API's commands on the simulated PBX."""

import asyncio
import collections
import heapq
import itertools
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from services.monitor.updates import DirectoryUpdate, ParticipantUpdate, PbxUpdate
from shared.clock import Clock
from shared.commands import (
    Command,
    CommandResult,
    MakeCall,
    SetForwarding,
    SetOptions,
    SetQueueLogin,
    extension_of,
)
from shared.directory import Directory

from .recorder import WavRecorder
from .scenario import Scenario, ScenarioError, Step, load_scenario
from .simulator import PbxSimulator

logger = logging.getLogger(__name__)

# How the simulator plays a click-to-dial: seconds after the command
MAKECALL_PICKUP = 2.0  # the first party picks up, and the PBX dials the second
MAKECALL_RING = 2.5  # an internal second party's phone rings
MAKECALL_ANSWER = 6.0  # the second party answers
MAKECALL_HANGUP = 36.0  # the first party hangs up


def playable_scenario(path: Path) -> Scenario:
    """The scenario file at `path`, played through once on a scratch simulator: ScenarioError
    (naming the file and the step) before anything is sent when it is malformed or impossible."""
    scenario = load_scenario(path)
    simulator = PbxSimulator(scenario.directory, first_call_number=scenario.first_call_number)
    start = scenario.start.replace(tzinfo=ZoneInfo("UTC"))
    try:
        for step in scenario.steps:
            simulator.apply(step, start + timedelta(seconds=step.t))
    except ScenarioError as error:
        raise ScenarioError(f"{path}: {error}") from None
    return scenario


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
        live: bool = False,
    ) -> None:
        """`live`: once the steps are played, wait for commands instead of ending."""
        self._live = live
        self.simulator = PbxSimulator(
            directory,
            first_call_number=first_call_number,
            recorder=WavRecorder(recordings) if recordings else None,
        )
        self._timeline = iter(steps)
        self._clock = clock
        self._scheduled: list[tuple[datetime, int, Step]] = []  # the steps commands set in motion
        self._order = itertools.count()
        self._ready: collections.deque[PbxUpdate] = collections.deque()  # a command's immediate effect
        self._wake = asyncio.Event()
        self._makecalls = itertools.count(1)

    @classmethod
    def for_scenario(
        cls,
        scenario: Scenario,
        clock: Clock,
        zone: ZoneInfo,
        recordings: Path | None = None,
        *,
        live: bool = False,
    ) -> "SimulatorDriver":
        start = scenario.start.replace(tzinfo=zone)
        timeline = ((start + timedelta(seconds=step.t), step) for step in scenario.steps)
        return cls(
            scenario.directory,
            timeline,
            clock,
            first_call_number=scenario.first_call_number,
            recordings=recordings,
            live=live,
        )

    def resume(self, participants: list[ParticipantUpdate]) -> None:
        """A restarted monitor's calls: the simulator (begun afresh) has none of them, so each
        participant comes as removed, right after the directory."""
        now = self._clock.now()
        self._ready.extend(replace(p, at=now, removed=True) for p in participants)

    async def updates(self) -> AsyncIterator[PbxUpdate]:
        """The directory, then each step's updates at its time; ends when the timeline and the
        steps commands scheduled have all been played (unless `live`)."""
        yield DirectoryUpdate(self._clock.now(), self.simulator.directory)
        upcoming = next(self._timeline, None)
        while True:
            while self._ready:
                yield self._ready.popleft()
            scheduled = self._scheduled[0][0] if self._scheduled else None
            if upcoming is None and scheduled is None:
                if not self._live:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            from_timeline = scheduled is None or (upcoming is not None and upcoming[0] <= scheduled)
            at = upcoming[0] if from_timeline and upcoming is not None else scheduled
            assert at is not None
            if not await self._sleep_until(at):
                continue  # a command came first
            if from_timeline and upcoming is not None:
                step, upcoming = upcoming[1], next(self._timeline, None)
                for update in self.simulator.apply(step, at):
                    yield update
                continue
            _, _, step = heapq.heappop(self._scheduled)
            try:
                updates = self.simulator.apply(step, at)
            except ScenarioError as error:  # the call went another way meanwhile
                logger.warning("simulator: %s skipped: %s", step["call"], error)
                continue
            for update in updates:
                yield update

    async def _sleep_until(self, at: datetime) -> bool:
        """Wait for `at`; False when a command arrived first."""
        if self._clock.now() >= at:
            return True
        self._wake.clear()
        sleeping = asyncio.ensure_future(self._clock.sleep_until(at))
        woken = asyncio.ensure_future(self._wake.wait())
        await asyncio.wait({sleeping, woken}, return_when=asyncio.FIRST_COMPLETED)
        on_time = sleeping.done()
        for waiter in (sleeping, woken):
            waiter.cancel()
        return on_time

    def ready(self) -> bool:
        return True

    def waiting(self) -> tuple[int, int]:
        return 0, 0

    def now(self) -> datetime:
        """The simulated PBX's time."""
        return self._clock.now()

    # --- commands ------------------------------------------------------------------------------

    async def execute(self, command: Command) -> CommandResult:
        problem = self._check(command)
        if problem is not None:
            return problem
        now = self._clock.now()
        if isinstance(command, MakeCall):
            return self._makecall(command, now)
        try:
            self._ready.extend(self.simulator.apply(_command_step(command, self.simulator), now))
        except ScenarioError as error:
            return CommandResult.failed("refused", str(error))
        self._wake.set()
        return CommandResult(ok=True)

    def _check(self, command: Command) -> CommandResult | None:
        """Names that do not exist (not_found), requests that make no sense (invalid)."""
        directory = self.simulator.directory
        extensions = {e.number for e in directory.extensions}
        queues = {q.number: q for q in directory.queues}
        who = extension_of(command)
        if who not in extensions:
            return CommandResult.failed("not_found", f"extension {who} does not exist")
        if isinstance(command, MakeCall):
            if self.simulator.is_internal(command.second) and command.second not in extensions:
                return CommandResult.failed("invalid", f"{command.second} is not an extension")
            if not command.second.strip("+").isdigit():
                return CommandResult.failed("invalid", f"{command.second!r} is not a phone number")
        if isinstance(command, SetQueueLogin) and command.queue != "all":
            queue = queues.get(command.queue)
            if queue is None:
                return CommandResult.failed("not_found", f"queue {command.queue} does not exist")
            if command.extension not in queue.agents:
                return CommandResult.failed(
                    "invalid", f"extension {command.extension} is not an agent of queue {command.queue}"
                )
        return None

    def _makecall(self, command: MakeCall, now: datetime) -> CommandResult:
        label = f"makecall-{next(self._makecalls)}"
        internal = self.simulator.is_internal(command.second)
        first = command.first
        try:
            self._ready.extend(
                self.simulator.apply(
                    _step("makecall", call=label, **{"from": first, "to": command.second}), now
                )
            )
        except ScenarioError as error:
            return CommandResult.failed("refused", str(error))
        script: list[tuple[float, Step]] = [(MAKECALL_PICKUP, _step("answer", call=label, dn=first))]
        if internal:
            script.append((MAKECALL_RING, _step("ring", call=label, dn=(command.second,))))
        script += [
            (MAKECALL_ANSWER, _step("answer", call=label, dn=command.second if internal else "external")),
            (MAKECALL_HANGUP, _step("hangup", call=label, by=first)),
        ]
        for seconds, step in script:
            heapq.heappush(self._scheduled, (now + timedelta(seconds=seconds), next(self._order), step))
        self._wake.set()
        return CommandResult(ok=True, call_number=self.simulator.call_number(label))


def _step(do: str, **fields: Any) -> Step:
    return Step(-1, 0.0, do, fields)


def _command_step(command: Command, simulator: PbxSimulator) -> Step:
    if isinstance(command, SetForwarding):
        return _step("set_forwarding", dn=command.extension, profile=command.profile)
    if isinstance(command, SetQueueLogin):
        return _step("queue_login", dn=command.extension, queue=command.queue, on=command.logged_in)
    assert isinstance(command, SetOptions)
    current = next(e for e in simulator.directory.extensions if e.number == command.extension)
    return _step(
        "set_options",
        dn=command.extension,
        enabled=current.enabled if command.enabled is None else command.enabled,
        external=current.external if command.external is None else command.external,
        recording=current.recording if command.recording is None else command.recording,
    )
