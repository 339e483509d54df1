"""`callbridge scenario run|check|generate`: a scenario played through the services in one
process, compared with expected webhooks, or written by the traffic generator."""

import sys
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from services.recordings.transcode import processes
from services.recordings.work import Pool
from shared import lifecycle
from shared.clock import VirtualClock
from shared.logging import configure_logging
from shared.settings import ConfigError, EndpointSettings, Settings

from .driver import SimulatorDriver, playable_scenario
from .playback import through_fake_3cx
from .preview import PreviewTransport
from .runner import OneProcess, play
from .scenario import Scenario, default_directory, load_directory
from .scenario_writer import dump_scenario, scenario_document
from .traffic import TrafficGenerator


@dataclass(frozen=True)
class ScenarioRun:
    file: Path
    via: str = "simulator"  # or "fake-3cx"
    speed: float | None = None  # fake-3cx: at most this many times real time
    timezone: ZoneInfo | None = None  # default: [pbx] timezone
    recordings_dir: Path | None = None  # keep the simulator's WAVs here
    archive_dir: Path | None = None  # keep the MP3s here
    webhook_url: str | None = None  # deliver instead of printing
    endpoints: bool = False  # deliver to the configuration's [webhook:NAME] endpoints instead
    preview: str | None = None  # print what this endpoint would be sent instead


def run_scenario(settings: Settings, options: ScenarioRun, out: TextIO = sys.stdout) -> int:
    configure_logging("WARNING")
    scenario = playable_scenario(options.file)
    zone = options.timezone or settings.pbx.zone
    with (
        tempfile.TemporaryDirectory(prefix="callbridge-pbx-") as scratch,
        Pool(lambda: processes(2)) as pool,
    ):
        pbx_dir = options.recordings_dir or Path(scratch) / "pbx"
        # one pass after the calls: everything is finished then, nothing needs to settle
        recordings = settings.recordings.model_copy(
            update={
                "pbx_dir": pbx_dir,
                "archive_dir": options.archive_dir or Path(scratch) / "archive",
                "database": Path(scratch) / "recordings.db",
                "settle": 0,
                "quiet": 0,
                "max_wait": 86400.0,
                "http_port": 0,
            }
        )
        endpoints = _endpoints(settings, options)
        pbx = settings.pbx.model_copy(update={"timezone": zone.key})
        configured = settings.model_copy(
            update={"recordings": recordings, "endpoints": endpoints, "pbx": pbx}
        )
        return lifecycle.run(_played(configured, scenario, options, out, pool))


async def _played(
    settings: Settings, scenario: Scenario, options: ScenarioRun, out: TextIO, pool: Pool
) -> int:
    zone, pbx_dir = settings.pbx.zone, settings.recordings.pbx_dir
    if options.via == "fake-3cx":
        # a fake 3CX (HTTP and WebSocket on 127.0.0.1) plays it, the 3CX driver watches it as it
        # would a real one; both on one clock, which waits for the driver
        fake = through_fake_3cx(scenario, zone, speed=options.speed, recordings=pbx_dir)
        async with fake as (_, watching, lockstep):
            return await play(OneProcess(settings, watching, lockstep, "scenario", out=out, converting=pool))
    virtual = VirtualClock(scenario.start.replace(tzinfo=zone))
    simulator = SimulatorDriver.for_scenario(scenario, virtual, zone, pbx_dir)
    run = OneProcess(settings, simulator, virtual, "scenario", out=out, converting=pool)
    if options.preview:
        endpoint = settings.endpoints[options.preview]
        shown = {endpoint.url.rstrip("/"): "{url}"}
        shown |= {endpoint.token.get_secret_value(): "***"} if endpoint.token else {}
        run = replace(run, transport=PreviewTransport(out, shown))
    return await play(run)


def _endpoints(settings: Settings, options: ScenarioRun) -> dict[str, EndpointSettings]:
    """Where the scenario's webhooks go: the configuration's endpoints, one of them (preview), a
    URL, or none (printed)."""
    if options.preview:
        if options.preview not in settings.endpoints:
            known = ", ".join(settings.endpoints) or "none"
            raise ConfigError(
                f"no endpoint [webhook:{options.preview}] in the configuration (it has: {known})"
            )
        return {options.preview: settings.endpoints[options.preview].model_copy(update={"enabled": True})}
    if options.endpoints:
        if not settings.endpoints:
            raise ConfigError("--endpoints: the configuration has no [webhook:NAME] endpoint")
        return dict(settings.endpoints)
    return {"target": EndpointSettings(url=options.webhook_url)} if options.webhook_url else {}


@dataclass(frozen=True)
class Generated:
    seed: int = 1
    minutes: float = 10.0
    calls_per_minute: float = 10.0
    max_concurrent: int = 20
    talk: tuple[float, float] = (20.0, 240.0)  # the shortest and the longest conversation, seconds
    directory: Path | None = None
    start: datetime = datetime(2024, 3, 4, 9)


def generated(options: Generated) -> str:
    """The traffic generator's calls as a scenario file (YAML): the same for the same options."""
    directory = load_directory(options.directory) if options.directory else default_directory()
    generator = TrafficGenerator(
        directory,
        seed=options.seed,
        calls_per_minute=options.calls_per_minute,
        max_concurrent=options.max_concurrent,
        talk=options.talk,
    )
    document = scenario_document(
        (step for _, step in generator.steps(until=options.minutes * 60)),
        name=f"generated, seed {options.seed}",
        start=options.start,
        directory=directory.model_dump(mode="json") if options.directory else None,
    )
    return dump_scenario(document)
