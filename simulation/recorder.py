"""The simulator's call recorder: WAV files laid out as 3CX lays them out.

3CX keeps recordings in `<root>/<extension>/` named
`[<remote name>]_<from>-<to>_<YYYYMMDDhhmmss>(<n>).wav` (docs/3cx.md §3): the
time is the PBX-local start of the recording and `<n>` here is the PBX call number. One file per
recorded stretch of a link: a media reconnect closes one stretch and opens the next. The audio is
8 kHz mono 16-bit PCM, as long as the stretch (a quiet tone, so a decoder has something to decode).
"""

import logging
import math
import re
import struct
import wave
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
_TONE_SECOND = b"".join(
    struct.pack("<h", int(1200 * math.sin(2 * math.pi * 440 * i / SAMPLE_RATE))) for i in range(SAMPLE_RATE)
)
_UNSAFE = re.compile(r"[^\w +.-]")


@dataclass(frozen=True, slots=True)
class Stretch:
    """One recorded stretch of one extension on one call."""

    extension: str
    call_number: int
    caller: str  # the `<from>` of the file name
    callee: str  # the `<to>` of the file name
    remote_name: str
    started_at: datetime  # PBX-local


def recording_name(stretch: Stretch) -> str:
    stamp = stretch.started_at.strftime("%Y%m%d%H%M%S")
    name, caller, callee = (
        _UNSAFE.sub("", text) for text in (stretch.remote_name, stretch.caller, stretch.callee)
    )
    return f"[{name}]_{caller}-{callee}_{stamp}({stretch.call_number}).wav"


class WavRecorder:
    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, stretch: Stretch, ended_at: datetime) -> Path:
        seconds = max((ended_at - stretch.started_at).total_seconds(), 0.0)
        folder = self.root / stretch.extension
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / recording_name(stretch)
        frames = round(seconds * SAMPLE_RATE)
        partial = folder / f".{path.name}.part"
        with wave.open(str(partial), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(SAMPLE_RATE)
            whole, rest = divmod(frames, SAMPLE_RATE)
            for _ in range(whole):
                out.writeframesraw(_TONE_SECOND)
            out.writeframesraw(_TONE_SECOND[: rest * 2])
        partial.rename(path)  # appears complete, as a closed 3CX file does
        logger.debug("recording %s written (%.1f s)", path, seconds)
        return path
