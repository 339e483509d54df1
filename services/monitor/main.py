"""Monitor service: PBX driver → call tracker → bus.

`running()` is the composition root that `main()`, the one-process runner and tests share: it
takes the settings, the bus, the driver (3CX or the simulator: whoever starts the monitor builds
it) and the run's source id, answers the API's requests (`shared.commands`: `snapshot` with the
state its published events describe, `command` by handing the command to the driver), and follows
the driver until it runs dry (a scenario) or the block ends (live traffic, a real PBX).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from shared import commands
from shared.bus import Bus
from shared.directory import Directory
from shared.heap import HeapCollector
from shared.http_server import serving
from shared.lifecycle import wait_for_shutdown
from shared.logging import configure_logging
from shared.pbx_state import PbxState, StateSnapshot
from shared.rabbit_bus import RabbitBus
from shared.settings import Settings

from . import checkpoint
from .driver import Driver
from .following import Following
from .http import create_app
from .metrics import MonitorMetrics
from .outbox import Outbox, Relay
from .tracker import CallTracker

logger = logging.getLogger(__name__)


def new_source(monitor_id: str) -> str:
    """A monitor run's event source: its configured id plus a boot id, so a restart that begins
    again at seq 1 reads as a new stream, never as a gap."""
    return f"{monitor_id}/{uuid4().hex[:8]}"


@dataclass
class Monitor:
    tracker: CallTracker
    following: "asyncio.Task[None]"
    outbox: Outbox
    source: str  # the run's: a new one, or the run it resumed

    async def finished(self) -> CallTracker:
        """Once the driver has run dry (a scenario played): the tracker, with every event it made
        confirmed by the bus."""
        await self.following
        return self.tracker


@contextlib.asynccontextmanager
async def running(
    settings: Settings,
    bus: Bus,
    driver: Driver,
    outbox: Outbox,
    *,
    source: str,
    metrics: MonitorMetrics | None = None,
) -> AsyncIterator[Monitor]:
    """Follow `driver`; keep the events made in `outbox`, from which they go to `bus` in order."""
    figures = metrics or MonitorMetrics()
    figures.watch(outbox, driver)
    relay = Relay(outbox, bus, settings.monitor.states_every, figures.batches.inc)
    tracker = tracker_for(outbox, settings.pbx.zone, source, driver)
    source = tracker.source
    state = PbxState()

    async def snapshot(_: dict[str, Any]) -> dict[str, Any]:
        # the calls from the tracker, which holds them anyway: a copy of every call's state
        # here would cost ~1.5 kB per call in progress
        calls, busy = tracker.current()
        now = StateSnapshot(source=source, seq=tracker.seq, directory=state.directory, busy=busy, calls=calls)
        return now.model_dump(mode="json")

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
    relaying = asyncio.create_task(relay.run(), name="monitor outbox")
    loop = Following(tracker, state, outbox, figures, settings.monitor.states_every)

    async def follow() -> None:
        await loop.follow(driver.updates())
        await relay.drained()

    following = asyncio.create_task(follow(), name="monitor")
    try:
        yield Monitor(tracker, following, outbox, source)
    finally:
        for task in (following, relaying):
            task.cancel()
        await asyncio.gather(following, relaying, return_exceptions=True)


def tracker_for(outbox: Outbox, zone: ZoneInfo, source: str, driver: Driver) -> CallTracker:
    """The tracker of the run this monitor left in its outbox (the same `[monitor] id`), with
    its calls in progress, which `driver` is told of; a new one, of `source`, when there is none
    to go on with."""
    saved = outbox.saved()
    if saved is None or saved.source.rsplit("/", 1)[0] != source.rsplit("/", 1)[0]:
        outbox.forget_run()  # another monitor id's: its events still go out, its calls are not ours
        return CallTracker(Directory(), zone=zone, source=source)
    calls = [checkpoint.load(text) for text in saved.calls]
    logger.info("monitor %s: resumed at #%d, %d call(s) in progress", saved.source, saved.seq, len(calls))
    tracker = CallTracker.resumed(Directory(), calls, zone=zone, source=saved.source, seq=saved.seq)
    if calls:
        driver.resume(tracker.participants())
    return tracker


async def main(settings: Settings, driver: Driver) -> None:
    configure_logging(settings.log.level, settings.log.json_lines)
    source = new_source(settings.monitor.source)
    metrics = MonitorMetrics()
    outbox = Outbox(settings.monitor.outbox)
    async with (
        RabbitBus.configured(settings.bus, f"monitor {source}") as bus,
        serving(
            create_app(metrics, lambda: bus.connected and driver.ready() and outbox.writable),
            settings.monitor.http_host,
            settings.monitor.http_port,
        ),
        running(settings, bus, driver, outbox, source=source, metrics=metrics) as monitor,
    ):
        metrics.registry.register(bus.collector())
        metrics.registry.register(HeapCollector())
        logger.info("monitor %s started on the %s driver", monitor.source, settings.pbx.driver)
        shutdown = asyncio.create_task(wait_for_shutdown())
        done, _ = await asyncio.wait({monitor.following, shutdown}, return_when=asyncio.FIRST_COMPLETED)
        shutdown.cancel()
        if monitor.following in done:
            monitor.following.result()  # the driver failed for good: say why
            logger.info("monitor %s: the scenario has ended", monitor.source)
    outbox.close()
    logger.info("monitor %s stopped", monitor.source)
