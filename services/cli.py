"""The `callbridge` command.

    callbridge monitor                     the monitor service on RabbitMQ (configuration: --config)
    callbridge scenario run FILE           play a scenario through the services in one process on a
                                           virtual clock; print each classic webhook as a JSON line
    callbridge demo                        the simulator's live traffic, classic webhooks printed
"""

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.clock import SystemClock, VirtualClock
from shared.events import Message
from shared.logging import configure_logging
from shared.memory_bus import InMemoryBus
from shared.settings import ConfigError, Settings, load_settings
from shared.topology import WEBHOOKS_BINDINGS

from .monitor import main as monitor
from .monitor.drivers import SimulatorDriver, check_scenario
from .monitor.scenario import ScenarioError, default_directory, load_directory, load_scenario
from .webhooks.classic import classic_payload


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        return int(args.run(args, settings) or 0)
    except (ConfigError, ScenarioError) as error:
        print(f"callbridge: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callbridge", description="3CX ⇄ business software bridge")
    parser.add_argument("--config", type=Path, help="the .ini file (default: $CALLBRIDGE_CONFIG, "
                        "then /etc/callbridge/callbridge.ini)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    monitor_cmd = commands.add_parser("monitor", help="run the monitor service on RabbitMQ")
    monitor_cmd.set_defaults(run=_monitor)

    scenario = commands.add_parser("scenario", help="scenario files").add_subparsers(required=True, metavar="ACTION")
    run = scenario.add_parser("run", help="play a scenario and print its classic webhooks, one JSON object a line")
    run.add_argument("file", type=Path)
    run.add_argument("--recordings-dir", type=Path, help="keep the simulated PBX's WAV recordings here")
    run.add_argument("--timezone", help="the PBX's time zone (default: [pbx] timezone)")
    run.set_defaults(run=_scenario_run)

    demo = commands.add_parser("demo", help="live simulated traffic, classic webhooks printed")
    demo.add_argument("--directory", type=Path, help="a scenario directory file (default: the built-in one)")
    demo.add_argument("--calls-per-minute", type=float, default=6.0)
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--seed", type=int)
    demo.set_defaults(run=_demo)
    return parser


def _monitor(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(monitor.main(settings))
    return 0


def _print_classic(event: Message) -> None:
    payload = classic_payload(event)
    if payload is not None:
        print(json.dumps(payload), flush=True)


async def _printer(event: Message) -> None:
    _print_classic(event)


def _scenario_run(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging("WARNING")
    scenario = load_scenario(args.file)
    check_scenario(scenario)
    zone = ZoneInfo(args.timezone) if args.timezone else settings.pbx.zone
    with tempfile.TemporaryDirectory(prefix="callbridge-pbx-") as scratch:
        recordings = args.recordings_dir or Path(scratch)
        asyncio.run(_play(scenario_driver_factory=lambda clock: SimulatorDriver.for_scenario(
            scenario, clock, zone, recordings), clock=VirtualClock(scenario.start.replace(tzinfo=zone)), zone=zone))
    return 0


async def _play(scenario_driver_factory, clock, zone: ZoneInfo) -> None:  # type: ignore[no-untyped-def]
    bus = InMemoryBus()
    await bus.subscribe("webhooks", _printer, bindings=WEBHOOKS_BINDINGS)
    await monitor.run(scenario_driver_factory(clock), bus, zone=zone, source="scenario")


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log.level)
    overrides = {"calls_per_minute": args.calls_per_minute, "seed": args.seed, "record": False}
    simulator = settings.simulator.model_copy(update=overrides)
    demo_settings = settings.model_copy(update={"simulator": simulator})
    directory = load_directory(args.directory) if args.directory else default_directory()

    async def play() -> None:
        clock = SystemClock()
        driver = SimulatorDriver(directory, monitor.traffic_timeline(demo_settings, directory, clock), clock)
        bus = InMemoryBus()
        await bus.subscribe("webhooks", _printer, bindings=WEBHOOKS_BINDINGS)
        task = monitor.run(driver, bus, zone=settings.pbx.zone, source=monitor.new_source("demo"))
        if args.duration:
            try:
                await asyncio.wait_for(task, args.duration)
            except TimeoutError:
                pass
        else:
            await task

    asyncio.run(play())
    return 0


if __name__ == "__main__":
    sys.exit(main())
