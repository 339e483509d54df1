"""`callbridge scenario run | check | generate`: the simulation harness's scenario files, played
through the services in one process, compared with what was expected, or generated."""

import argparse
import sys
from pathlib import Path

from shared.settings import Settings
from simulation.compare import compare, read_webhooks

from .arguments import folder, number, start_time, web_url, zone
from .common import Commands, read_lines


def add(commands: Commands) -> None:
    actions = commands.add_parser("scenario", help="scenario files").add_subparsers(
        required=True, metavar="ACTION"
    )
    run = actions.add_parser("run", help="play a scenario, print its classic webhooks as JSON lines")
    run.add_argument("file", type=Path)
    run.add_argument("--recordings-dir", type=folder, help="keep the simulated PBX's WAV recordings here")
    run.add_argument("--archive-dir", type=folder, help="keep the converted MP3 recordings here")
    run.add_argument("--timezone", type=zone, help="the PBX's time zone (default: [pbx] timezone)")
    target = run.add_mutually_exclusive_group()
    instead = "deliver the classic webhooks here instead of printing them"
    target.add_argument("--webhook-url", type=web_url, help=instead)
    to_all = "deliver to the configuration's [webhook:NAME] endpoints, each in its format, instead"
    target.add_argument("--endpoints", action="store_true", help=to_all)
    via = "fake-3cx: through a fake 3CX on 127.0.0.1 and the 3CX driver watching it over HTTP"
    run.add_argument("--via", choices=["simulator", "fake-3cx"], default="simulator", help=via)
    pace = "with --via fake-3cx: at most this many times real time (default: as fast as the driver keeps up)"
    run.add_argument("--speed", type=number(0, 1e6, above=True), help=pace)
    run.set_defaults(run=_run)
    check = actions.add_parser("check", help="compare classic webhooks (JSON lines) with the expected ones")
    check.add_argument("expected", type=Path, help="the expected webhooks (EXPECTED.jsonl)")
    check.add_argument("actual", help="what a run gave, e.g. `scenario run`'s output ('-': stdin)")
    check.set_defaults(run=_check)
    generate = actions.add_parser("generate", help="the traffic generator's calls as a scenario file (YAML)")
    generate.add_argument("--seed", type=int, default=1, help="the same seed, the same calls (default 1)")
    generate.add_argument("--minutes", type=number(0, 10080, above=True), default=10.0, help="of calls")
    generate.add_argument("--calls-per-minute", type=number(0, 600, above=True), default=10.0)
    generate.add_argument("--max-concurrent", type=number(1, 10000, whole=True), default=20)
    generate.add_argument("--directory", type=Path, help="a directory file (default: the built-in one)")
    generate.add_argument("--start", type=start_time, default="2024-03-04T09:00:00", help="PBX time, t=0")
    generate.set_defaults(run=_generate)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from simulation import playing

    fields = ("file", "via", "speed", "timezone", "recordings_dir", "archive_dir", "webhook_url", "endpoints")
    return playing.run_scenario(settings, playing.ScenarioRun(**{f: getattr(args, f) for f in fields}))


def _check(args: argparse.Namespace, settings: Settings) -> int:
    actual = sys.stdin.read().splitlines() if args.actual == "-" else read_lines(Path(args.actual))
    source = "stdin" if args.actual == "-" else args.actual
    expected = read_webhooks(read_lines(args.expected), str(args.expected))
    comparison = compare(expected, read_webhooks(actual, source))
    print(comparison.report())
    return 0 if comparison.matched else 1


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    from simulation import playing

    fields = ("seed", "minutes", "calls_per_minute", "max_concurrent", "directory", "start")
    print(playing.generated(playing.Generated(**{f: getattr(args, f) for f in fields})), end="")
    return 0
