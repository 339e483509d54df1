"""`callbridge pbx check | fake`: the configured 3CX as the monitor would see it, and a fake 3CX
playing the simulator for trials and tests."""

import argparse

from shared import lifecycle
from shared.settings import Settings

from .arguments import number
from .common import Commands, fail, ran


def add(commands: Commands) -> None:
    pbx = commands.add_parser("pbx", help="the phone system").add_subparsers(required=True, metavar="ACTION")
    check = pbx.add_parser("check", help="connect to the configured 3CX and print what it shows")
    check.set_defaults(run=_check)
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
        "--get-delay",
        type=number(0, 60),
        default=0.0,
        help="seconds each participant's GET takes to answer (a PBX that far away)",
    )
    fake.add_argument(
        "--start-now",
        action="store_true",
        help="the scenario begins now, not at its start (use with speed 1)",
    )
    fake.set_defaults(run=_fake)


def _fake(args: argparse.Namespace, settings: Settings) -> int:
    from simulation.fake3cx import Switches
    from simulation.fake_process import serve_fake

    switches = Switches(snapshot_delay=args.snapshot_delay, get_delay=args.get_delay)
    return ran(serve_fake(settings, switches, start_now=args.start_now))


def _check(args: argparse.Namespace, settings: Settings) -> int:
    from ..monitor.threecx.check import check as pbx_check
    from ..monitor.threecx.client import PbxError

    try:
        report = lifecycle.run(pbx_check(settings.pbx))
    except PbxError as error:
        return fail(error, 1)
    print("\n".join(report))
    return 0
