"""The `callbridge` command (`callbridge --config FILE COMMAND …`).

monitor                                the monitor service on RabbitMQ
api                                    the REST API service (classic methods, commands, events)
pbx check                              connect to the configured 3CX and print what it shows
webhooks                               the webhooks service
webhooks dead list|replay              deliveries given up on: list them, send them again
webhooks attempts                      the delivery attempt log
recordings                             the recordings service
recordings convert DIR                 convert a folder of WAVs, with a progress bar
scenario run FILE                      play a scenario through the services in one process on
                                       a virtual clock; print (or --webhook-url: deliver) each
                                       classic webhook; --via fake-3cx: through a fake 3CX and
                                       the 3CX driver instead of the simulator
demo                                   the simulator's live traffic, its classic webhooks delivered
                                       to a built-in receiver that prints them (or --webhook-url),
                                       the API on localhost (its key printed)
"""

import argparse
import asyncio
import contextlib
import json
import logging
import os
import secrets
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn
from zoneinfo import ZoneInfo

import httpx
from pydantic import SecretStr

from shared import lifecycle
from shared.clock import Clock, SystemClock, VirtualClock
from shared.events import Message, RecordingReady
from shared.http_server import serving
from shared.logging import configure_logging, redact
from shared.memory_bus import InMemoryBus
from shared.settings import (
    MIN_KEY_LENGTH,
    ApiSettings,
    ConfigError,
    EndpointSettings,
    RecordingsSettings,
    Settings,
    check_url,
    check_zone,
    load_settings,
)
from shared.topology import RECORDINGS_BINDINGS, WEBHOOKS_BINDINGS

from . import demo_receiver
from .api import main as api_service
from .monitor import main as monitor
from .monitor.compare import ExpectationError, compare, read_webhooks
from .monitor.drivers import Driver, SimulatorDriver, playable_scenario
from .monitor.scenario import (
    Scenario,
    ScenarioError,
    default_directory,
    dump_scenario,
    load_directory,
    parse_start,
    scenario_document,
)
from .monitor.threecx.check import check as pbx_check
from .monitor.threecx.client import PbxError
from .monitor.threecx.playback import through_fake_3cx
from .monitor.traffic import TrafficGenerator
from .recordings import http as recordings_http
from .recordings import main as recordings_service
from .recordings.backlog import convert_folder
from .recordings.service import Recordings
from .recordings.work import LocalConversions, Worker
from .webhooks import main as webhooks
from .webhooks.admin import parse_since, replay_through_broker
from .webhooks.classic import classic_payload, classic_recording
from .webhooks.jobs import Intake
from .webhooks.policy import RetryPolicy
from .webhooks.queues import MemoryJobQueue
from .webhooks.sender import AiohttpTransport, new_session
from .webhooks.store import DeadDelivery, DeliveryStore

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; whatever goes wrong ends in one line on stderr and a non-zero status: 2 for
    bad input (arguments, configuration, scenario), 1 for anything else (the broker or the PBX
    away, a port taken, a folder not writable, a fault of ours)."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        settings = load_settings(args.config)
        return int(args.run(args, settings) or 0)
    except (ConfigError, ScenarioError) as error:
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

    monitor_cmd = commands.add_parser("monitor", help="run the monitor service on RabbitMQ")
    monitor_cmd.set_defaults(run=_monitor)
    api_cmd = commands.add_parser("api", help="run the REST API service on RabbitMQ")
    api_cmd.set_defaults(run=_api)
    pbx = commands.add_parser("pbx", help="the phone system").add_subparsers(required=True, metavar="ACTION")
    pbx.add_parser("check", help="connect to the configured 3CX and print what it shows").set_defaults(
        run=_pbx_check
    )

    scenario = commands.add_parser("scenario", help="scenario files").add_subparsers(
        required=True, metavar="ACTION"
    )
    run = scenario.add_parser(
        "run", help="play a scenario and print its classic webhooks, one JSON object a line"
    )
    run.add_argument("file", type=Path)
    run.add_argument("--recordings-dir", type=folder, help="keep the simulated PBX's WAV recordings here")
    run.add_argument("--archive-dir", type=folder, help="keep the converted MP3 recordings here")
    run.add_argument("--timezone", type=zone, help="the PBX's time zone (default: [pbx] timezone)")
    run.add_argument(
        "--webhook-url",
        type=web_url,
        help="deliver the classic webhooks to this URL instead of printing them",
    )
    run.add_argument(
        "--via",
        choices=["simulator", "fake-3cx"],
        default="simulator",
        help="fake-3cx: through a fake 3CX on 127.0.0.1 and the 3CX driver watching it over HTTP",
    )
    run.add_argument(
        "--speed",
        type=number(0, 1e6, above=True),
        help="with --via fake-3cx: at most this many times real time (default: as fast as the driver "
        "keeps up)",
    )
    run.set_defaults(run=_scenario_run)
    check = scenario.add_parser(
        "check", help="compare classic webhooks (JSON lines) with the expected ones; exit 0 when all match"
    )
    check.add_argument("expected", type=Path, help="the expected webhooks (EXPECTED.jsonl)")
    check.add_argument("actual", help="what a run gave, e.g. `scenario run`'s output ('-': stdin)")
    check.set_defaults(run=_scenario_check)
    generate = scenario.add_parser(
        "generate", help="write the traffic generator's calls as a scenario file (YAML on stdout)"
    )
    generate.add_argument(
        "--seed", type=int, default=1, help="the same seed gives the same calls (default 1)"
    )
    generate.add_argument(
        "--minutes", type=number(0, 10080, above=True), default=10.0, help="how long calls keep arriving"
    )
    generate.add_argument("--calls-per-minute", type=number(0, 600, above=True), default=10.0)
    generate.add_argument(
        "--max-concurrent", type=number(1, 10000, whole=True), default=20, help="the most calls at once"
    )
    generate.add_argument("--directory", type=Path, help="a directory file (default: the built-in one)")
    generate.add_argument(
        "--start", type=start_time, default="2024-03-04T09:00:00", help="PBX local time at t = 0"
    )
    generate.set_defaults(run=_scenario_generate)

    webhooks = commands.add_parser("webhooks", help="the webhooks service, and its dead letters")
    webhooks.set_defaults(run=_webhooks)
    webhooks_actions = webhooks.add_subparsers(metavar="ACTION")
    dead = webhooks_actions.add_parser("dead", help="deliveries given up on").add_subparsers(
        required=True, metavar="ACTION"
    )
    for name, handler, text in (
        ("list", _dead_list, "list them"),
        ("replay", _dead_replay, "send them again"),
    ):
        action = dead.add_parser(name, help=text)
        action.add_argument("--endpoint", help="only this [webhook:NAME]")
        action.add_argument("--since", help="only those since: an ISO time, or a duration ago (2h)")
        action.set_defaults(run=handler)
    recordings_cmd = commands.add_parser("recordings", help="the recordings service, and backlog conversion")
    recordings_cmd.set_defaults(run=_recordings)
    convert = recordings_cmd.add_subparsers(metavar="ACTION").add_parser(
        "convert", help="convert a folder of existing WAVs to MP3, with a progress bar and a summary"
    )
    convert.add_argument("source", type=Path, help="a folder of WAV files (searched recursively)")
    convert.add_argument("--out", type=folder, help="where the MP3s go (default: beside the WAVs)")
    convert.add_argument(
        "--workers", type=number(1, 64, whole=True), help="worker processes (default: [recordings] workers)"
    )
    convert.set_defaults(run=_recordings_convert)

    attempts = webhooks_actions.add_parser("attempts", help="the delivery attempt log, newest first")
    attempts.add_argument("--endpoint")
    attempts.add_argument("--since")
    attempts.add_argument("--limit", type=number(1, 1_000_000, whole=True), default=50)
    attempts.set_defaults(run=_attempts)

    health = commands.add_parser(
        "health", help="ask a service on this host whether it is ready (exit 0) or not (exit 1)"
    )
    health.add_argument("service", choices=SERVED)
    health.add_argument("--live", action="store_true", help="only whether it answers (/healthz)")
    health.set_defaults(run=_health)

    demo = commands.add_parser("demo", help="live simulated traffic, classic webhooks printed")
    demo.add_argument("--directory", type=Path, help="a scenario directory file (default: the built-in one)")
    demo.add_argument(
        "--calls-per-minute",
        type=number(0, 600),
        default=6.0,
        help="mean arrival rate of the simulated calls (0: none but those the API's makecall makes)",
    )
    demo.add_argument("--duration", type=number(0, 1e7, above=True), help="stop after this many seconds")
    demo.add_argument("--seed", type=int)
    demo.add_argument(
        "--webhook-url",
        type=web_url,
        help="deliver the classic webhooks to this URL instead of printing them",
    )
    demo.add_argument("--api-port", type=PORT, default=8080, help="the API's port on 127.0.0.1 (0: no API)")
    demo.add_argument(
        "--api-key", type=api_key, help="the API key (default: [api] keys, else a fresh one, printed)"
    )
    demo.add_argument(
        "--recordings-port",
        type=PORT,
        default=8090,
        help="record the calls and serve the MP3s on this port of 127.0.0.1 (0: no recordings)",
    )
    demo.set_defaults(run=_demo)
    return parser


SERVED = ("monitor", "api", "webhooks", "recordings")


def number(low: float, high: float, *, above: bool = False, whole: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number from `low` (exclusive with `above`) to `high`."""

    def parse(text: str) -> float:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole ' if whole else ''}number") from None
        if not (low < value if above else low <= value) or not value <= high:  # NaN fails too
            lowest = f"more than {low:g}" if above else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"must be {lowest} and at most {high:g}, not {text}")
        return value

    parse.__name__ = "whole number" if whole else "number"
    return parse


PORT = number(0, 65535, whole=True)  # 0: none


def web_url(text: str) -> str:
    try:
        return check_url(text, ("http", "https"))
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def folder(text: str) -> Path:
    """A folder to write in: made if need be, and tried."""
    path = Path(text)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write in {path}: {error.strerror or error}") from None
    return path


def zone(text: str) -> ZoneInfo:
    try:
        return check_zone(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def api_key(text: str) -> SecretStr:
    if len(text) < MIN_KEY_LENGTH:
        raise argparse.ArgumentTypeError(f"an API key must be at least {MIN_KEY_LENGTH} characters")
    return SecretStr(text)


def start_time(text: str) -> datetime:
    try:
        return parse_start(text)
    except ScenarioError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _health(args: argparse.Namespace, settings: Settings) -> int:
    """GET the service's own /readyz (or /healthz) where the configuration says it listens:
    the health check of the compose file and of anyone's monitoring script."""
    section = getattr(settings, args.service)
    if not section.http_port:
        print(f"callbridge: error: [{args.service}] http_port is 0: no HTTP server to ask", file=sys.stderr)
        return 2
    host = "127.0.0.1" if section.http_host in ("", "0.0.0.0", "::") else section.http_host
    scheme = "https" if getattr(section, "tls_cert", None) else "http"
    url = f"{scheme}://{f'[{host}]' if ':' in host else host}:{section.http_port}"
    url += "/healthz" if args.live else "/readyz"
    try:
        # this host's own server, whose certificate may well be for its public name only
        response = httpx.get(url, timeout=5, verify=False)
    except httpx.HTTPError as error:
        print(f"{args.service}: no answer from {url}: {error}", file=sys.stderr)
        return 1
    print(f"{args.service}: {response.status_code} {response.text}")
    return 0 if response.status_code == 200 else 1


def _monitor(args: argparse.Namespace, settings: Settings) -> int:
    lifecycle.run(monitor.main(settings))
    return 0


def _pbx_check(args: argparse.Namespace, settings: Settings) -> int:
    try:
        report = lifecycle.run(pbx_check(settings.pbx))
    except PbxError as error:
        return _fail(error, 1)
    print("\n".join(report))
    return 0


def _api(args: argparse.Namespace, settings: Settings) -> int:
    lifecycle.run(api_service.main(settings))
    return 0


async def _print_classic(event: Message) -> None:
    payload = classic_recording(event) if isinstance(event, RecordingReady) else classic_payload(event)
    if payload is not None:
        print(json.dumps(payload), flush=True)


async def _play(
    driver: Driver,
    zone: ZoneInfo,
    source: str,
    clock: Clock,
    webhook_url: str | None,
    recordings: tuple[RecordingsSettings, Executor] | None = None,
    api: ApiSettings | None = None,
    show_key: bool = True,
) -> int:
    """The services in one process on the in-memory bus. Classic webhooks go to stdout, or with
    `webhook_url` through the webhooks service's dispatcher to that URL; returns an exit status.
    With `recordings` (their settings and the executor to convert in), the recordings service
    converts and announces the PBX's recordings: as they come, serving the archive, when the
    settings give an HTTP port; else once the calls are over. With `api`, the API serves on its
    configured host and port meanwhile, its first key printed with `show_key` (else a stand-in:
    a key from the configuration is the operator's secret)."""
    bus = InMemoryBus()
    async with contextlib.AsyncExitStack() as stack:
        if api is not None:
            service = await stack.enter_async_context(api_service.running(api, bus))
            await stack.enter_async_context(serving(service.app, api.http_host, api.http_port))
            key = (api.keys or api.read_only_keys)[0].get_secret_value() if show_key else "YOUR-API-KEY"
            print(f"callbridge: API on http://{api.http_host}:{api.http_port}/  key: {key}", file=sys.stderr)
            print(
                f"  try: curl 'http://{api.http_host}:{api.http_port}/pbx.callsinfo.get?key={key}'",
                file=sys.stderr,
            )
        return await _services(bus, driver, zone, source, clock, webhook_url, recordings, stack)


async def _services(
    bus: InMemoryBus,
    driver: Driver,
    zone: ZoneInfo,
    source: str,
    clock: Clock,
    webhook_url: str | None,
    recordings: tuple[RecordingsSettings, Executor] | None,
    stack: contextlib.AsyncExitStack,
) -> int:
    service: Recordings | None = None
    served = False  # the recordings served as they come (the demo), or converted once at the end
    if recordings is not None:
        config, executor = recordings
        secret = secrets.token_bytes(32)  # the links of this run only
        conversions = LocalConversions(Worker(bus, executor, clock))
        service = Recordings(config, bus, clock, conversions, zone=zone, secret=secret)
        await bus.subscribe("recordings", service.on_event, bindings=RECORDINGS_BINDINGS)
        if config.http_port:
            app = recordings_http.create_app(config.archive_dir, secret, clock)
            await stack.enter_async_context(serving(app, config.http_host, config.http_port))
            stack.push_async_callback(_cancelled, asyncio.create_task(service.run()))
            served = True

    async def play() -> None:
        await monitor.run(driver, bus, zone=zone, source=source)
        if service is not None and not served:
            await service.scan()
            await service.drain()
            await service.announce()

    if webhook_url is None:
        await bus.subscribe("webhooks", _print_classic, bindings=WEBHOOKS_BINDINGS)
        await play()
        return 0
    settings = Settings(endpoints={"target": EndpointSettings(url=webhook_url)})
    store = DeliveryStore(Path(":memory:"))
    queue = MemoryJobQueue(clock)
    async with new_session() as session:
        dispatcher, _ = webhooks.build(
            settings,
            bus,
            queue,
            store,
            AiohttpTransport(session),
            clock,
            RetryPolicy.configured(settings.webhooks),
        )
        intake = Intake(settings.endpoints, queue.submit)
        await bus.subscribe("webhooks", intake, bindings=WEBHOOKS_BINDINGS)
        worker = asyncio.create_task(queue.run(dispatcher))
        try:
            await play()
            await queue.drain()
        finally:
            worker.cancel()
    for delivery in store.dead():
        print(
            f"callbridge: error: {delivery.event_type} {delivery.chain} not delivered: {delivery.reason}",
            file=sys.stderr,
        )
    return 1 if store.dead() else 0


async def _cancelled(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def _scenario_check(args: argparse.Namespace, settings: Settings) -> int:
    try:
        expected = read_webhooks(_lines(args.expected), str(args.expected))
        source = sys.stdin if args.actual == "-" else _lines(Path(args.actual))
        actual = read_webhooks(source, "stdin" if args.actual == "-" else args.actual)
    except ExpectationError as error:
        raise ConfigError(str(error)) from None
    comparison = compare(expected, actual)
    print(comparison.report())
    return 0 if comparison.matched else 1


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None


def _scenario_generate(args: argparse.Namespace, settings: Settings) -> int:
    directory = load_directory(args.directory) if args.directory else default_directory()
    generator = TrafficGenerator(
        directory,
        seed=args.seed,
        calls_per_minute=args.calls_per_minute,
        max_concurrent=args.max_concurrent,
    )
    document = scenario_document(
        (step for _, step in generator.steps(until=args.minutes * 60)),
        name=f"generated, seed {args.seed}",
        start=args.start,
        directory=directory.model_dump(mode="json") if args.directory else None,
    )
    print(dump_scenario(document), end="")
    return 0


def _scenario_run(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging("WARNING")
    scenario = playable_scenario(args.file)
    zone = args.timezone or settings.pbx.zone
    clock = VirtualClock(scenario.start.replace(tzinfo=zone))
    with tempfile.TemporaryDirectory(prefix="callbridge-pbx-") as scratch, ProcessPoolExecutor(2) as executor:
        pbx_dir = args.recordings_dir or Path(scratch) / "pbx"
        # one pass after the calls: everything is finished then, nothing needs to settle
        options = {
            "pbx_dir": pbx_dir,
            "archive_dir": args.archive_dir or Path(scratch) / "archive",
            "database": Path(scratch) / "recordings.db",
            "settle": 0,
            "quiet": 0,
            "max_wait": 86400.0,
            "http_port": 0,  # one pass after the calls, nothing served
        }
        recordings = (settings.recordings.model_copy(update=options), executor)
        if args.via == "fake-3cx":
            return lifecycle.run(_via_fake_3cx(args, scenario, zone, pbx_dir, recordings))
        driver = SimulatorDriver.for_scenario(scenario, clock, zone, pbx_dir)
        return lifecycle.run(_play(driver, zone, "scenario", clock, args.webhook_url, recordings))


async def _via_fake_3cx(
    args: argparse.Namespace,
    scenario: Scenario,
    zone: ZoneInfo,
    pbx_dir: Path,
    recordings: tuple[RecordingsSettings, Executor],
) -> int:
    """The scenario played by a fake 3CX (HTTP and WebSocket on 127.0.0.1), watched by the 3CX
    driver as it would watch a real one; both on one clock, which waits for the driver."""
    async with through_fake_3cx(scenario, zone, speed=args.speed, recordings=pbx_dir) as (_, driver, clock):
        return await _play(driver, zone, "scenario", clock, args.webhook_url, recordings)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging(settings.log.level)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # the demo prints its own addresses
    with (
        tempfile.TemporaryDirectory(prefix="callbridge-demo-") as scratch,
        ProcessPoolExecutor(1) as executor,
    ):
        return _demo_in(args, settings, Path(scratch), executor)


def _demo_in(args: argparse.Namespace, settings: Settings, scratch: Path, executor: Executor) -> int:
    simulator = settings.simulator.model_copy(
        update={
            "calls_per_minute": args.calls_per_minute,
            "seed": args.seed,
            "directory": args.directory,
            "scenario": None,
            "record": bool(args.recordings_port),
            "recordings_dir": scratch / "pbx",
        }
    )
    driver, clock = monitor.build_driver(settings.model_copy(update={"simulator": simulator}))
    recordings = None
    if args.recordings_port:
        served = {
            "pbx_dir": scratch / "pbx",
            "archive_dir": scratch / "archive",
            "database": scratch / "recordings.db",
            "http_host": "127.0.0.1",
            "http_port": args.recordings_port,
            "public_url": f"http://127.0.0.1:{args.recordings_port}",
            "tls_cert": None,
            "tls_key": None,
            "scan_interval": 1.0,
            "settle": 1.0,
            "quiet": 2.0,
        }
        recordings = (settings.recordings.model_copy(update=served), executor)
    api, show_key = None, False
    if args.api_port:
        keys = (args.api_key,) if args.api_key else settings.api.keys
        show_key = keys != settings.api.keys or not keys  # typed on the command line, or made now
        api = ApiSettings.model_validate(
            settings.api.model_dump()
            | {
                "http_host": "127.0.0.1",
                "http_port": args.api_port,
                "keys": keys or (SecretStr(secrets.token_urlsafe(24)),),
            }
        )

    async def demo() -> int:
        source = monitor.new_source("demo")
        if args.webhook_url:
            return await _play(
                driver, settings.pbx.zone, source, clock, args.webhook_url, recordings, api, show_key
            )
        async with demo_receiver.receiving() as url:  # the webhooks service delivers to it
            print(
                f"callbridge: classic webhooks delivered to the built-in receiver at {url}", file=sys.stderr
            )
            if recordings:
                print(
                    f"callbridge: recordings (MP3) served on {recordings[0].public_url}/ "
                    "(links in the recording webhooks)",
                    file=sys.stderr,
                )
            print(demo_receiver.header(), flush=True)
            return await _play(driver, settings.pbx.zone, source, clock, url, recordings, api, show_key)

    try:
        lifecycle.run(asyncio.wait_for(demo(), args.duration) if args.duration else demo())
    except (TimeoutError, KeyboardInterrupt):  # --duration ran out, or Ctrl-C: both are how a demo ends
        print("demo stopped", file=sys.stderr)
    return 0


def _webhooks(args: argparse.Namespace, settings: Settings) -> int:
    lifecycle.run(webhooks.main(settings))
    return 0


def _store(settings: Settings) -> DeliveryStore:
    """The webhooks service's delivery store, which must be there already: a path mistyped in the
    configuration is an error, not an empty store."""
    path = settings.webhooks.database
    if not path.is_file():
        raise ConfigError(f"no delivery store at {path}: is [webhooks] database the webhooks service's?")
    return DeliveryStore(path)


def _since(args: argparse.Namespace) -> float:
    try:
        return parse_since(args.since, SystemClock())
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _dead(args: argparse.Namespace, settings: Settings) -> tuple[DeliveryStore, list[DeadDelivery]]:
    store = _store(settings)
    return store, store.dead(endpoint=args.endpoint, since=_since(args))


def _dead_list(args: argparse.Namespace, settings: Settings) -> int:
    _, dead = _dead(args, settings)
    for d in dead:
        print(
            f"{d.id}\t{datetime.fromtimestamp(d.at, UTC):%Y-%m-%d %H:%M:%S}Z\t{d.endpoint}\t{d.event_type}"
            f"\t{d.chain}\t{d.reason}"
        )
    print(f"{len(dead)} dead deliver{'y' if len(dead) == 1 else 'ies'}", file=sys.stderr)
    return 0


def _dead_replay(args: argparse.Namespace, settings: Settings) -> int:
    store, dead = _dead(args, settings)
    if dead:
        lifecycle.run(replay_through_broker(settings, store, dead, SystemClock()))
    print(f"{len(dead)} dead deliver{'y' if len(dead) == 1 else 'ies'} sent again", file=sys.stderr)
    return 0


def _attempts(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    for a in store.attempts(endpoint=args.endpoint, since=_since(args), limit=args.limit):
        status = a.status if a.status is not None else "-"
        print(
            f"{datetime.fromtimestamp(a.at, UTC):%Y-%m-%d %H:%M:%S}Z\t{a.endpoint}\t{a.event_type}\t{a.chain}"
            f"\tattempt {a.attempt}\t{status}\t{a.outcome}\t{a.latency_ms:.0f} ms\t{a.response[:80]!r}"
        )
    return 0


def _recordings(args: argparse.Namespace, settings: Settings) -> int:
    lifecycle.run(recordings_service.main(settings))
    return 0


def _recordings_convert(args: argparse.Namespace, settings: Settings) -> int:
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
        workers=args.workers or config.workers,  # (0 is refused by the parser)
    )
    print(summary.report())
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
