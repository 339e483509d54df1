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

from shared.clock import VirtualClock
from shared.events import Message
from shared.logging import configure_logging, redact
from shared.memory_bus import InMemoryBus
from shared.settings import ConfigError, Settings, load_settings
from shared.topology import WEBHOOKS_BINDINGS

from .monitor import main as monitor
from .monitor.drivers import Driver, SimulatorDriver, check_scenario
from .monitor.scenario import ScenarioError, load_scenario
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
    except ConnectionError as error:
        print(f"callbridge: error: {redact(str(error))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callbridge", description="3CX ⇄ business software bridge")
    parser.add_argument(
        "--config",
        type=Path,
        help="the .ini file (default: $CALLBRIDGE_CONFIG, then /etc/callbridge/callbridge.ini)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    monitor_cmd = commands.add_parser("monitor", help="run the monitor service on RabbitMQ")
    monitor_cmd.set_defaults(run=_monitor)

    scenario = commands.add_parser("scenario", help="scenario files").add_subparsers(
        required=True, metavar="ACTION"
    )
    run = scenario.add_parser(
        "run", help="play a scenario and print its classic webhooks, one JSON object a line"
    )
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


async def _print_classic(event: Message) -> None:
    payload = classic_payload(event)
    if payload is not None:
        print(json.dumps(payload), flush=True)


async def _play_printing(driver: Driver, zone: ZoneInfo, source: str) -> None:
    """The services in one process on the in-memory bus; classic webhooks go to stdout."""
    bus = InMemoryBus()
    await bus.subscribe("webhooks", _print_classic, bindings=WEBHOOKS_BINDINGS)
    await monitor.run(driver, bus, zone=zone, source=source)


def _scenario_run(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging("WARNING")
    scenario = load_scenario(args.file)
    check_scenario(scenario)
    zone = ZoneInfo(args.timezone) if args.timezone else settings.pbx.zone
    clock = VirtualClock(scenario.start.replace(tzinfo=zone))
    with tempfile.TemporaryDirectory(prefix="callbridge-pbx-") as scratch:
        driver = SimulatorDriver.for_scenario(scenario, clock, zone, args.recordings_dir or Path(scratch))
        asyncio.run(_play_printing(driver, zone, "scenario"))
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log.level)
    simulator = settings.simulator.model_copy(
        update={
            "calls_per_minute": args.calls_per_minute,
            "seed": args.seed,
            "directory": args.directory,
            "scenario": None,
            "record": False,
        }
    )
    driver = monitor.build_driver(settings.model_copy(update={"simulator": simulator}))
    play = _play_printing(driver, settings.pbx.zone, monitor.new_source("demo"))
    try:
        asyncio.run(asyncio.wait_for(play, args.duration) if args.duration else play)
    except (TimeoutError, KeyboardInterrupt):  # --duration ran out, or Ctrl-C: both are how a demo ends
        print("demo stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
