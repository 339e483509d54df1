"""The `callbridge` command (`callbridge --config FILE COMMAND …`): it parses the command line,
loads the configuration and hands over to the module that does the work; whatever goes wrong
ends in one line on stderr and a non-zero status (2: bad input; 1: anything else).

monitor | api | webhooks | recordings  a service, on RabbitMQ
pbx check                              connect to the configured 3CX and print what it shows
pbx fake                               a fake 3CX playing [simulator] on [pbx] url (for trials and tests)
bus convert-queues                     give the durable queues the type [bus] queue_type asks for
webhooks dead list|replay              deliveries given up on: list them, send them again
webhooks attempts                      the delivery attempt log
recordings convert DIR                 convert a folder of WAVs, with a progress bar
scenario run FILE                      play a scenario through the services in one process
scenario check EXPECTED ACTUAL         compare classic webhooks with the expected ones
scenario generate                      the traffic generator's calls as a scenario file
demo                                   live simulated traffic through the services in one process
health SERVICE                         is a service on this host ready?
"""

import argparse
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from shared import lifecycle
from shared.clock import SystemClock
from shared.config_file import load_settings
from shared.logging import redact
from shared.settings import ConfigError, Settings
from simulation import demo, playing
from simulation.compare import ExpectationError
from simulation.configured import pbx_driver
from simulation.fake3cx import Switches
from simulation.fake_process import serve_fake
from simulation.scenario import ScenarioError

from . import health, queue_types
from .api import main as api_main
from .arguments import PORT, api_key, folder, number, start_time, web_url, zone
from .monitor import main as monitor_main
from .monitor.threecx.check import check as pbx_check
from .monitor.threecx.client import PbxError
from .recordings import main as recordings_main
from .recordings.backlog import convert_folder
from .webhooks import admin
from .webhooks import main as webhooks_main
from .webhooks.store import DeliveryStore

logger = logging.getLogger(__name__)
T = TypeVar("T")
Command = Callable[[argparse.Namespace, Settings], int]
SERVED = ("monitor", "api", "webhooks", "recordings")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        settings = load_settings(args.config)
        return int(args.run(args, settings))
    except (ConfigError, ScenarioError, ExpectationError) as error:
        return _fail(error, 2)
    except OSError as error:  # ConnectionError included: the broker, a port, a file
        return _fail(error, 1)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # not foreseen: still one line; the traceback at [log] level = DEBUG
        logger.debug("callbridge failed", exc_info=True)
        return _fail(f"unexpected {type(error).__name__}: {error}", 1)


def _fail(problem: object, status: int) -> int:
    lines = redact(str(problem)).strip().splitlines() or [type(problem).__name__]
    print(f"callbridge: error: {lines[0]}", file=sys.stderr)
    return status


class _Parser(argparse.ArgumentParser):
    """argparse, its complaints in one line (with where to look for help) and status 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{self.prog}: {message} (see {self.prog} --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="callbridge", description="3CX ⇄ business software bridge")
    parser.add_argument(
        "--config",
        type=Path,
        help="the .ini file (default: $CALLBRIDGE_CONFIG, then /etc/callbridge/callbridge.ini)",
    )
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    for add in (_services, _pbx, _bus, _webhooks, _recordings, _scenario, _demo, _health):
        add(commands)
    return parser


# --- the services -----------------------------------------------------------------------------------


def _services(commands: "argparse._SubParsersAction[_Parser]") -> None:
    runs: dict[str, Command] = {
        "monitor": lambda a, s: _ran(monitor_main.main(s, pbx_driver(s))),
        "api": lambda a, s: _ran(api_main.main(s)),
    }
    for name, run in runs.items():
        commands.add_parser(name, help=f"run the {name} service on RabbitMQ").set_defaults(run=run)


def _ran(service: Coroutine[Any, Any, None]) -> int:
    lifecycle.run(service)
    return 0


def _pbx(commands: "argparse._SubParsersAction[_Parser]") -> None:
    pbx = commands.add_parser("pbx", help="the phone system").add_subparsers(required=True, metavar="ACTION")
    check = pbx.add_parser("check", help="connect to the configured 3CX and print what it shows")
    check.set_defaults(run=_pbx_check)
    fake = pbx.add_parser(
        "fake", help="a fake 3CX on 127.0.0.1 at the port of [pbx] url, playing [simulator] (trials, tests)"
    )
    fake.add_argument(
        "--snapshot-delay",
        type=number(0, 60),
        default=0.0,
        help="seconds each Call Control snapshot takes to answer (taken when asked, older by then)",
    )
    fake.add_argument(
        "--start-now",
        action="store_true",
        help="the scenario begins now, not at its start (use with speed 1)",
    )
    fake.set_defaults(run=_pbx_fake)


def _pbx_fake(args: argparse.Namespace, settings: Settings) -> int:
    switches = Switches(snapshot_delay=args.snapshot_delay)
    return _ran(serve_fake(settings, switches, start_now=args.start_now))


def _pbx_check(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = lifecycle.run(pbx_check(settings.pbx))
    except PbxError as error:
        return _fail(error, 1)
    print("\n".join(report))
    return 0


def _bus(commands: "argparse._SubParsersAction[_Parser]") -> None:
    actions = commands.add_parser("bus", help="the RabbitMQ queues").add_subparsers(
        required=True, metavar="ACTION"
    )
    convert = actions.add_parser(
        "convert-queues",
        help="give every durable queue the type [bus] queue_type asks for, keeping its messages "
        "(every callbridge service stopped)",
    )
    convert.set_defaults(run=_convert_queues)


def _convert_queues(args: argparse.Namespace, settings: Settings) -> int:
    converted = lifecycle.run(queue_types.convert(settings))
    for queue, messages in converted.items():
        print(f"{queue}\t{messages} message(s)")
    print(f"{len(converted)} queue(s) are {settings.bus.queue_type} queues now", file=sys.stderr)
    return 0


def _webhooks(commands: "argparse._SubParsersAction[_Parser]") -> None:
    webhooks = commands.add_parser("webhooks", help="the webhooks service, and its dead letters")
    webhooks.set_defaults(run=lambda a, s: _ran(webhooks_main.main(s)))
    actions = webhooks.add_subparsers(metavar="ACTION")
    dead = actions.add_parser("dead", help="deliveries given up on").add_subparsers(
        required=True, metavar="ACTION"
    )
    for name, run, text in (("list", _dead_list, "list them"), ("replay", _dead_replay, "send them again")):
        action = dead.add_parser(name, help=text)
        action.add_argument("--endpoint", help="only this [webhook:NAME]")
        action.add_argument("--since", help="only those since: an ISO time, or a duration ago (2h)")
        action.set_defaults(run=run)
    attempts = actions.add_parser("attempts", help="the delivery attempt log, newest first")
    attempts.add_argument("--endpoint")
    attempts.add_argument("--since")
    attempts.add_argument("--limit", type=number(1, 1_000_000, whole=True), default=50)
    attempts.set_defaults(run=_attempts)


def _dead_list(args: argparse.Namespace, settings: Settings) -> int:
    since = admin.since(args.since, SystemClock())
    dead = _in_store(settings, lambda store: store.dead(endpoint=args.endpoint, since=since))
    for delivery in dead:
        print(admin.dead_line(delivery))
    print(admin.deliveries(len(dead)), file=sys.stderr)
    return 0


def _dead_replay(args: argparse.Namespace, settings: Settings) -> int:
    since, clock = admin.since(args.since, SystemClock()), SystemClock()

    async def replay(store: DeliveryStore) -> int:
        dead = await store.dead(endpoint=args.endpoint, since=since)
        if dead:
            await admin.replay_through_broker(settings, store, dead, clock)
        return len(dead)

    print(f"{admin.deliveries(_in_store(settings, replay))} sent again", file=sys.stderr)
    return 0


def _attempts(args: argparse.Namespace, settings: Settings) -> int:
    since = admin.since(args.since, SystemClock())
    attempts = _in_store(
        settings, lambda store: store.attempts(endpoint=args.endpoint, since=since, limit=args.limit)
    )
    for attempt in attempts:
        print(admin.attempt_line(attempt))
    return 0


def _in_store(settings: Settings, use: Callable[[DeliveryStore], Awaitable[T]]) -> T:
    return lifecycle.run(admin.in_store(admin.existing(settings.webhooks.database), use))


def _recordings(commands: "argparse._SubParsersAction[_Parser]") -> None:
    recordings = commands.add_parser("recordings", help="the recordings service, and backlog conversion")
    recordings.set_defaults(run=lambda a, s: _ran(recordings_main.main(s)))
    convert = recordings.add_subparsers(metavar="ACTION").add_parser(
        "convert", help="convert a folder of existing WAVs to MP3, with a progress bar and a summary"
    )
    convert.add_argument("source", type=Path, help="a folder of WAV files (searched recursively)")
    convert.add_argument("--out", type=folder, help="where the MP3s go (default: beside the WAVs)")
    workers = number(1, 64, whole=True)
    convert.add_argument("--workers", type=workers, help="worker processes (default: [recordings] workers)")
    convert.set_defaults(run=_convert)


def _convert(args: argparse.Namespace, settings: Settings) -> int:
    if not args.source.is_dir():
        raise ConfigError(f"{args.source} is not a folder")
    if not os.access(args.source, os.R_OK | os.X_OK):
        raise ConfigError(f"{args.source}: this user may not read the folder")
    config = settings.recordings
    summary = convert_folder(
        args.source,
        args.out or args.source,
        bitrate=config.bitrate,
        quality=config.quality,
        workers=args.workers or config.workers,
    )
    print(summary.report())
    return 1 if summary.failed else 0


def _health(commands: "argparse._SubParsersAction[_Parser]") -> None:
    ask = commands.add_parser(
        "health", help="ask a service on this host whether it is ready (exit 0) or not (1)"
    )
    ask.add_argument("service", choices=SERVED)
    ask.add_argument("--live", action="store_true", help="only whether it answers (/healthz)")
    ask.set_defaults(run=_ask)


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    ready, answer = health.ask(settings, args.service, live=args.live)
    print(answer, file=sys.stdout if ready else sys.stderr)
    return 0 if ready else 1


# --- the simulation harness ---------------------------------------------------------------------------


def _scenario(commands: "argparse._SubParsersAction[_Parser]") -> None:
    actions = commands.add_parser("scenario", help="scenario files").add_subparsers(
        required=True, metavar="ACTION"
    )
    run = actions.add_parser(
        "run", help="play a scenario and print its classic webhooks, one JSON object a line"
    )
    run.add_argument("file", type=Path)
    run.add_argument("--recordings-dir", type=folder, help="keep the simulated PBX's WAV recordings here")
    run.add_argument("--archive-dir", type=folder, help="keep the converted MP3 recordings here")
    run.add_argument("--timezone", type=zone, help="the PBX's time zone (default: [pbx] timezone)")
    run.add_argument(
        "--webhook-url", type=web_url, help="deliver the classic webhooks here instead of printing them"
    )
    via = "fake-3cx: through a fake 3CX on 127.0.0.1 and the 3CX driver watching it over HTTP"
    run.add_argument("--via", choices=["simulator", "fake-3cx"], default="simulator", help=via)
    pace = "with --via fake-3cx: at most this many times real time (default: as fast as the driver keeps up)"
    run.add_argument("--speed", type=number(0, 1e6, above=True), help=pace)
    run.set_defaults(run=_scenario_run)
    check = actions.add_parser("check", help="compare classic webhooks (JSON lines) with the expected ones")
    check.add_argument("expected", type=Path, help="the expected webhooks (EXPECTED.jsonl)")
    check.add_argument("actual", help="what a run gave, e.g. `scenario run`'s output ('-': stdin)")
    check.set_defaults(run=_scenario_check)
    generate = actions.add_parser("generate", help="the traffic generator's calls as a scenario file (YAML)")
    generate.add_argument(
        "--seed", type=int, default=1, help="the same seed gives the same calls (default 1)"
    )
    generate.add_argument(
        "--minutes", type=number(0, 10080, above=True), default=10.0, help="calls arrive so long"
    )
    generate.add_argument("--calls-per-minute", type=number(0, 600, above=True), default=10.0)
    generate.add_argument("--max-concurrent", type=number(1, 10000, whole=True), default=20)
    generate.add_argument("--directory", type=Path, help="a directory file (default: the built-in one)")
    generate.add_argument(
        "--start", type=start_time, default="2024-03-04T09:00:00", help="PBX local time at t=0"
    )
    generate.set_defaults(run=_scenario_generate)


def _scenario_run(args: argparse.Namespace, settings: Settings) -> int:
    fields = ("file", "via", "speed", "timezone", "recordings_dir", "archive_dir", "webhook_url")
    return playing.run_scenario(settings, playing.ScenarioRun(**{f: getattr(args, f) for f in fields}))


def _scenario_check(args: argparse.Namespace, settings: Settings) -> int:
    actual = sys.stdin.read().splitlines() if args.actual == "-" else _lines(Path(args.actual))
    names = (str(args.expected), "stdin" if args.actual == "-" else args.actual)
    comparison = playing.check(_lines(args.expected), actual, names)
    print(comparison.report())
    return 0 if comparison.matched else 1


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None


def _scenario_generate(args: argparse.Namespace, settings: Settings) -> int:
    fields = ("seed", "minutes", "calls_per_minute", "max_concurrent", "directory", "start")
    print(playing.generated(playing.Generated(**{f: getattr(args, f) for f in fields})), end="")
    return 0


def _demo(commands: "argparse._SubParsersAction[_Parser]") -> None:
    run = commands.add_parser("demo", help="live simulated traffic, classic webhooks printed")
    run.add_argument("--directory", type=Path, help="a scenario directory file (default: the built-in one)")
    rate = "mean arrival rate of the simulated calls (0: none but those the API's makecall makes)"
    run.add_argument("--calls-per-minute", type=number(0, 600), default=6.0, help=rate)
    run.add_argument("--duration", type=number(0, 1e7, above=True), help="stop after this many seconds")
    run.add_argument("--seed", type=int)
    run.add_argument(
        "--webhook-url", type=web_url, help="deliver the classic webhooks here instead of printing them"
    )
    run.add_argument("--api-port", type=PORT, default=8080, help="the API's port on 127.0.0.1 (0: no API)")
    run.add_argument(
        "--api-key", type=api_key, help="the API key (default: [api] keys, else a fresh one, printed)"
    )
    serve = "record the calls and serve the MP3s on this port of 127.0.0.1 (0: no recordings)"
    run.add_argument("--recordings-port", type=PORT, default=8090, help=serve)
    run.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace, settings: Settings) -> int:
    fields = ("directory", "calls_per_minute", "duration", "seed", "webhook_url", "api_port", "api_key")
    options = demo.Demo(**{f: getattr(args, f) for f in fields}, recordings_port=args.recordings_port)
    return demo.run_demo(settings, options)


if __name__ == "__main__":
    sys.exit(main())
