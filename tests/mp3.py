"""MP3s as a listener's player sees them, with no ffmpeg: the audio decoded by miniaudio (dr_mp3)
and the frame headers read by mutagen."""

from dataclasses import dataclass
from pathlib import Path

import miniaudio
from mutagen.mp3 import MP3


@dataclass(frozen=True)
class Mp3:
    channels: int
    rate: int
    bitrate: int  # bits per second, from the frame headers
    seconds: float  # of decoded audio


def decode(path: Path) -> Mp3:
    headers = MP3(str(path)).info
    audio = miniaudio.mp3_read_file_s16(str(path))
    frames = len(audio.samples) // audio.nchannels
    assert (audio.nchannels, audio.sample_rate) == (headers.channels, headers.sample_rate)
    return Mp3(audio.nchannels, audio.sample_rate, headers.bitrate, frames / audio.sample_rate)
