"""File names: the PBX's WAVs in, the classic contract's MP3s out. Pure.

3CX writes `<root>/<extension>/[<remote name>]_<from>-<to>_<YYYYMMDDhhmmss>(<n>).wav`
(docs/3cx.md §3), the time being the PBX-local start of the recording. The
simulator writes the same, with the PBX call number as `<n>`. The archive keeps
`{link id}-{n}.mp3` (`211230100614_665-1-2.mp3`: the link's second file), one folder per day.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

_PBX_NAME = re.compile(
    r"^\[(?P<name>[^\]]*)\]_(?P<caller>.*?)-(?P<callee>[^-_]*)_(?P<stamp>\d{14})\((?P<n>\d+)\)\.wav$",
    re.IGNORECASE,
)
_ARCHIVE_NAME = re.compile(r"^(?P<chain>\d{12}_\d+)-(?P<link>\d+)-(?P<n>\d+)\.mp3$")


@dataclass(frozen=True, slots=True)
class PbxRecording:
    path: Path
    extension: str
    caller: str
    callee: str
    started: datetime  # PBX-local, naive
    number: int  # the `(n)` of the name: the call number on the simulator, a counter on 3CX


def parse_pbx_name(path: Path, root: Path) -> PbxRecording | None:
    """A recording under `root`, or None for anything else (temporary files, other layouts)."""
    match = _PBX_NAME.match(path.name)
    if match is None or path.parent == root:
        return None
    try:
        started = datetime.strptime(match["stamp"], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return PbxRecording(path, path.parent.name, match["caller"], match["callee"], started, int(match["n"]))


def archive_name(call_id: str, number: int) -> str:
    return f"{call_id}-{number}.mp3"


def archive_path(archive: Path, day: date, name: str) -> Path:
    return archive / day.isoformat() / name


def is_archive_name(name: str) -> bool:
    """Exactly a `{chain}-{link}-{n}.mp3` name: nothing with a path or anything else in it."""
    return _ARCHIVE_NAME.match(name) is not None
