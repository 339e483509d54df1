"""`callbridge recordings [convert DIR]`: the service, and a folder of existing WAVs converted
with a progress bar and a summary."""

import argparse
import os
from pathlib import Path

from shared.settings import ConfigError, Settings

from .arguments import folder, number
from .common import Commands, ran


def add(commands: Commands) -> None:
    recordings = commands.add_parser("recordings", help="the recordings service, and backlog conversion")
    recordings.set_defaults(run=_service)
    convert = recordings.add_subparsers(metavar="ACTION").add_parser(
        "convert", help="convert a folder of existing WAVs to MP3, with a progress bar and a summary"
    )
    convert.add_argument("source", type=Path, help="a folder of WAV files (searched recursively)")
    convert.add_argument("--out", type=folder, help="where the MP3s go (default: beside the WAVs)")
    workers = number(1, 64, whole=True)
    convert.add_argument("--workers", type=workers, help="worker processes (default: [recordings] workers)")
    convert.set_defaults(run=_convert)


def _service(args: argparse.Namespace, settings: Settings) -> int:
    from ..recordings import main

    return ran(main.main(settings))


def _convert(args: argparse.Namespace, settings: Settings) -> int:
    from ..recordings.backlog import convert_folder

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
