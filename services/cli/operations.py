"""`callbridge monitor | api`, `health SERVICE`, `bus convert-queues`: the services without
subcommands of their own, and the host's operations on them."""

import argparse
import sys

from shared import lifecycle
from shared.settings import Settings

from .common import Command, Commands, ran

SERVED = ("monitor", "api", "webhooks", "recordings")


def add(commands: Commands) -> None:
    runs: dict[str, Command] = {"monitor": _monitor, "api": _api}
    for name, run in runs.items():
        commands.add_parser(name, help=f"run the {name} service on RabbitMQ").set_defaults(run=run)
    actions = commands.add_parser("bus", help="the RabbitMQ queues").add_subparsers(
        required=True, metavar="ACTION"
    )
    convert = actions.add_parser(
        "convert-queues",
        help="give every durable queue the type [bus] queue_type asks for, keeping its messages "
        "(every callbridge service stopped)",
    )
    convert.set_defaults(run=_convert_queues)
    ask = commands.add_parser(
        "health", help="ask a service on this host whether it is ready (exit 0) or not (1)"
    )
    ask.add_argument("service", choices=SERVED)
    ask.add_argument("--live", action="store_true", help="only whether it answers (/healthz)")
    ask.set_defaults(run=_ask)


def _monitor(args: argparse.Namespace, settings: Settings) -> int:
    from simulation.configured import pbx_driver

    from ..monitor import main

    return ran(main.main(settings, pbx_driver(settings)))


def _api(args: argparse.Namespace, settings: Settings) -> int:
    from ..api import main

    return ran(main.main(settings))


def _convert_queues(args: argparse.Namespace, settings: Settings) -> int:
    from .. import queue_types

    converted = lifecycle.run(queue_types.convert(settings))
    for queue, messages in converted.items():
        print(f"{queue}\t{messages} message(s)")
    print(f"{len(converted)} queue(s) are {settings.bus.queue_type} queues now", file=sys.stderr)
    return 0


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    from .. import health

    ready, answer = health.ask(settings, args.service, live=args.live)
    print(answer, file=sys.stdout if ready else sys.stderr)
    return 0 if ready else 1
