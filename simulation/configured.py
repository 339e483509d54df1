"""The PBX driver the configuration asks for (`[pbx] driver`): the 3CX driver, or the simulator
playing `[simulator] scenario` (a scenario keeps its own dates) or generated traffic (from now),
at `[simulator] speed`. What `callbridge monitor` and the demo hand the monitor."""

import logging
import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

from services.monitor.driver import Driver
from services.monitor.threecx.check import check_pbx_settings
from services.monitor.threecx.driver import ThreeCxDriver
from shared.clock import Clock, ScaledClock, SystemClock
from shared.directory import Directory
from shared.settings import Settings

from .driver import SimulatorDriver, playable_scenario
from .scenario import Step, default_directory, load_directory
from .traffic import TrafficGenerator

logger = logging.getLogger(__name__)


def pbx_driver(settings: Settings) -> Driver:
    if settings.pbx.driver == "3cx":
        check_pbx_settings(settings.pbx)
        return ThreeCxDriver(settings.pbx, SystemClock(), backlog=settings.monitor.backlog)
    driver, _ = simulator_driver(settings)
    return driver


def simulator_driver(settings: Settings, *, start_now: bool = False) -> tuple[SimulatorDriver, Clock]:
    """The simulator on its clock; `start_now`: a scenario begins now (the PBX's local time), not
    at its `start`, so that at speed 1 its times are the wall clock's."""
    simulator = settings.simulator
    recordings = simulator.recordings_dir if simulator.record else None
    if simulator.scenario is not None:
        scenario = playable_scenario(simulator.scenario)
        if start_now:
            scenario = replace(scenario, start=datetime.now(settings.pbx.zone).replace(tzinfo=None))
        clock = ScaledClock(scenario.start.replace(tzinfo=settings.pbx.zone), simulator.speed)
        return SimulatorDriver.for_scenario(scenario, clock, settings.pbx.zone, recordings), clock
    directory = load_directory(simulator.directory) if simulator.directory else default_directory()
    clock = ScaledClock(SystemClock().now(), simulator.speed)
    timeline = traffic_timeline(settings, directory, clock)
    return SimulatorDriver(directory, timeline, clock, recordings=recordings, live=True), clock


def traffic_timeline(
    settings: Settings, directory: Directory, clock: Clock
) -> Iterator[tuple[datetime, Step]]:
    simulator = settings.simulator
    seed = simulator.seed if simulator.seed is not None else random.randrange(2**32)
    logger.info(
        "traffic generator: %.1f calls/min, at most %d at once, seed %d",
        simulator.calls_per_minute,
        simulator.max_concurrent,
        seed,
    )
    generator = TrafficGenerator(
        directory,
        seed=seed,
        calls_per_minute=simulator.calls_per_minute,
        max_concurrent=simulator.max_concurrent,
    )
    start = clock.now()
    until = simulator.minutes * 60 if simulator.minutes is not None else None
    return ((start + timedelta(seconds=t), step) for t, step in generator.steps(until))
