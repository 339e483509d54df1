"""Monitor service: PBX driver → call tracker → bus.

`run()` is the composition root that `main()`, the scenario runner and tests share: it takes the
driver, the bus and the monitor's source id, and returns when the driver runs dry (a scenario) or
is cancelled (live traffic, a real PBX). While it runs, it answers the API's requests
(`shared.commands`): `snapshot` with the state its published events describe, `command` by
handing the command to the driver.
"""

import asyncio
import logging
import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from shared import commands
from shared.bus import Bus
from shared.clock import Clock, ScaledClock, SystemClock
from shared.events import Directory
from shared.http_server import serving
from shared.lifecycle import wait_for_shutdown
from shared.logging import configure_logging
from shared.pbx_state import PbxState
from shared.rabbit_bus import RabbitBus
from shared.settings import Settings

from .drivers import Driver, SimulatorDriver, playable_scenario
from .http import MonitorMetrics, create_app
from .scenario import Step, default_directory, load_directory
from .threecx.check import check_pbx_settings
from .threecx.driver import ThreeCxDriver
from .tracker import CallTracker
from .traffic import TrafficGenerator

logger = logging.getLogger(__name__)


def new_source(monitor_id: str) -> str:
    """A monitor run's event source: its configured id plus a boot id, so a restart that begins
    again at seq 1 reads as a new stream, never as a gap."""
    return f"{monitor_id}/{uuid4().hex[:8]}"


async def run(
    driver: Driver, bus: Bus, *, zone: ZoneInfo, source: str, metrics: MonitorMetrics | None = None
) -> CallTracker:
    figures = metrics or MonitorMetrics()
    tracker = CallTracker(Directory(), zone=zone, source=source)
    state = PbxState()

    async def snapshot(_: dict[str, Any]) -> dict[str, Any]:
        return state.snapshot(source, tracker.seq).model_dump(mode="json")

    async def command(payload: dict[str, Any]) -> dict[str, Any]:
        try:
            request = commands.COMMAND_ADAPTER.validate_python(payload)
        except ValidationError as error:
            return commands.CommandResult.failed("invalid", str(error).splitlines()[0]).model_dump()
        result = await driver.execute(request)
        figures.commands.labels("done" if result.ok else result.failure or "refused").inc()
        logger.info("command %s: %s", request.command, "done" if result.ok else result.reason)
        return result.model_dump()

    await bus.serve(commands.SNAPSHOT, snapshot)
    await bus.serve(commands.COMMAND, command)
    try:
        async for update in driver.updates():
            made = tracker.apply(update)
            figures.updates.inc()
            for event in made:  # the state is complete up to tracker.seq before anything is sent
                state.apply(event)
            figures.seq.set(tracker.seq)
            figures.calls.set(len(state.calls))
            for event in made:
                await bus.publish(event)
                figures.events.labels(event.type).inc()
    finally:
        await bus.flush()
    return tracker


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
    return ((start + timedelta(seconds=t), step) for t, step in generator.steps())


def build_driver(settings: Settings) -> tuple[Driver, Clock]:
    """The configured driver on its clock: a scenario keeps its own dates, traffic starts now."""
    simulator = settings.simulator
    if settings.pbx.driver == "3cx":
        check_pbx_settings(settings.pbx)
        system = SystemClock()
        return ThreeCxDriver(settings.pbx, system), system
    recordings = simulator.recordings_dir if simulator.record else None
    if simulator.scenario is not None:
        scenario = playable_scenario(simulator.scenario)
        clock = ScaledClock(scenario.start.replace(tzinfo=settings.pbx.zone), simulator.speed)
        return SimulatorDriver.for_scenario(scenario, clock, settings.pbx.zone, recordings), clock
    directory = load_directory(simulator.directory) if simulator.directory else default_directory()
    clock = ScaledClock(SystemClock().now(), simulator.speed)
    timeline = traffic_timeline(settings, directory, clock)
    return SimulatorDriver(directory, timeline, clock, recordings=recordings, live=True), clock


async def main(settings: Settings) -> None:
    configure_logging(settings.log.level, settings.log.json_lines)
    driver, _ = build_driver(settings)
    source = new_source(settings.monitor.source)
    metrics = MonitorMetrics()
    async with (
        RabbitBus.configured(settings.bus, f"monitor {source}") as bus,
        serving(
            create_app(metrics, lambda: bus.connected and driver.ready()),
            settings.monitor.http_host,
            settings.monitor.http_port,
        ),
    ):
        metrics.registry.register(bus.collector())
        logger.info("monitor %s started on the %s driver", source, settings.pbx.driver)
        monitor = asyncio.create_task(
            run(driver, bus, zone=settings.pbx.zone, source=source, metrics=metrics)
        )
        shutdown = asyncio.create_task(wait_for_shutdown())
        done, _ = await asyncio.wait({monitor, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        for task in (monitor, shutdown):
            task.cancel()
        await asyncio.gather(monitor, shutdown, return_exceptions=True)
        if monitor in done and monitor.exception() is not None:
            raise monitor.exception()  # type: ignore[misc]
        if monitor in done:
            logger.info("monitor %s: the scenario has ended", source)
    logger.info("monitor %s stopped", source)
