"""`callbridge webhooks [dead list | dead replay | attempts]`: the service, and the operator's
look into its delivery store."""

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from shared.clock import SystemClock
from shared.settings import Settings

from .arguments import number
from .common import Commands, ran

if TYPE_CHECKING:
    from ..webhooks.store import DeliveryStore


def add(commands: Commands) -> None:
    webhooks = commands.add_parser("webhooks", help="the webhooks service, and its dead letters")
    webhooks.set_defaults(run=_service)
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
    preview = actions.add_parser(
        "preview", help="print what an endpoint would be sent for a scenario's calls"
    )
    preview.add_argument("--endpoint", required=True, help="the [webhook:NAME] to render for")
    preview.add_argument("scenario", type=Path, help="a scenario file (docs/scenarios.md)")
    preview.set_defaults(run=_preview)


def _service(args: argparse.Namespace, settings: Settings) -> int:
    from ..webhooks import main

    return ran(main.main(settings))


def _dead_list(args: argparse.Namespace, settings: Settings) -> int:
    from ..webhooks import admin

    since = admin.since(args.since, SystemClock())
    dead = admin.in_store(
        settings.webhooks.database, lambda store: store.dead(endpoint=args.endpoint, since=since)
    )
    for delivery in dead:
        print(admin.dead_line(delivery))
    print(admin.deliveries(len(dead)), file=sys.stderr)
    return 0


def _dead_replay(args: argparse.Namespace, settings: Settings) -> int:
    from ..webhooks import admin

    since, clock = admin.since(args.since, SystemClock()), SystemClock()

    async def replay(store: "DeliveryStore") -> int:
        return await admin.replay_through_broker(settings, store, clock, endpoint=args.endpoint, since=since)

    replayed = admin.in_store(settings.webhooks.database, replay)
    print(f"{admin.deliveries(replayed)} sent again", file=sys.stderr)
    return 0


def _attempts(args: argparse.Namespace, settings: Settings) -> int:
    from ..webhooks import admin

    since = admin.since(args.since, SystemClock())
    attempts = admin.in_store(
        settings.webhooks.database,
        lambda store: store.attempts(endpoint=args.endpoint, since=since, limit=args.limit),
    )
    for attempt in attempts:
        print(admin.attempt_line(attempt))
    return 0


def _preview(args: argparse.Namespace, settings: Settings) -> int:
    from simulation import playing

    return playing.run_scenario(settings, playing.ScenarioRun(args.scenario, preview=args.endpoint))
