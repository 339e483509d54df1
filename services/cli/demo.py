"""`callbridge demo`: live simulated traffic through the four services in one process, the
classic webhooks printed (or delivered), the API and the recordings served on 127.0.0.1."""

import argparse
from pathlib import Path

from shared.settings import Settings

from .arguments import PORT, api_key, number, web_url
from .common import Commands


def add(commands: Commands) -> None:
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
    run.set_defaults(run=_run)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from simulation import demo

    fields = ("directory", "calls_per_minute", "duration", "seed", "webhook_url", "api_port", "api_key")
    options = demo.Demo(**{f: getattr(args, f) for f in fields}, recordings_port=args.recordings_port)
    return demo.run_demo(settings, options)
