"""WAV → MP3, in worker processes: the encoder is lameenc (LAME, in-process; docs/benchmarks.md).

`transcode()` is a plain function so that a pool of `processes()` can run it. It reads any PCM
WAV (mono or stereo, 8 or 16 bit, any rate), encodes mono MP3 at a constant bitrate, writes it
atomically, after reading it back with a real MP3 decoder (miniaudio's dr_mp3, which walks
every frame) and checking that its duration matches the WAV's: a conversion is verified before
anyone deletes an original.
"""

import multiprocessing
import os
import wave
from array import array
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import lameenc
import miniaudio

# LAME's encoder delay plus the last frame's padding, which decoders cannot trim without a LAME
# tag: a few frames, under 0.3 s at telephony sample rates
MAX_PADDING = 0.3


def processes(workers: int) -> ProcessPoolExecutor:
    """A pool of `workers` processes for conversions. They start from a server process of their
    own (forkserver), not as forks of the service: a fork inherits the event loop's signal
    wake-up socket, so the SIGTERM with which a broken pool ends its other processes (after the
    OOM killer took one) reached the service itself, which stopped."""
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))


class CorruptRecording(Exception):
    """The WAV cannot be read or converted; it is reported and skipped, never retried."""


@dataclass(frozen=True, slots=True)
class Converted:
    source: Path
    target: Path
    seconds: float  # audio duration
    bytes: int


def read_mono_pcm16(path: Path) -> tuple[bytes, int]:
    """(mono 16-bit little-endian samples, sample rate) of a PCM WAV."""
    try:
        with wave.open(str(path), "rb") as audio:
            channels, width, rate = audio.getnchannels(), audio.getsampwidth(), audio.getframerate()
            frames = audio.readframes(audio.getnframes())
    except (wave.Error, EOFError, OSError) as error:
        raise CorruptRecording(f"not a readable PCM WAV ({str(error) or type(error).__name__})") from None
    if not frames:
        raise CorruptRecording("no audio in it")
    if width not in (1, 2) or channels not in (1, 2):
        raise CorruptRecording(f"{channels} channels of {8 * width}-bit samples are not supported")
    if width == 1:  # unsigned 8-bit → signed 16-bit
        frames = array("h", ((sample - 128) << 8 for sample in frames)).tobytes()
    if channels == 2:  # PBX recordings are mono; a stereo one is mixed down
        samples = array("h", frames)
        frames = array(
            "h", ((samples[i] + samples[i + 1]) // 2 for i in range(0, len(samples) - 1, 2))
        ).tobytes()
    return frames, rate


def transcode(
    source: Path, target: Path, bitrate: int = 32, quality: int = 7, delete_source: bool = False
) -> Converted:
    """Convert `source` into `target`; with `delete_source`, remove the WAV once the MP3 checked out.
    Done again (a job handed out twice, its first worker killed after the rename), it finds the
    MP3 there and the WAV gone, and answers as the first time. A disk that fills up leaves no
    `.part` behind (the OSError goes on to the caller)."""
    if not source.exists() and target.exists():
        info = miniaudio.mp3_get_file_info(str(target))
        return Converted(source, target, info.num_frames / info.sample_rate, target.stat().st_size)
    pcm, rate = read_mono_pcm16(source)
    encoder = lameenc.Encoder()
    encoder.set_bit_rate(bitrate)
    encoder.set_in_sample_rate(rate)
    encoder.set_channels(1)
    encoder.set_quality(quality)
    mp3 = bytes(encoder.encode(pcm)) + bytes(encoder.flush())
    expected = len(pcm) / 2 / rate
    try:
        info = miniaudio.mp3_get_info(mp3)
    except miniaudio.DecodeError as error:
        raise CorruptRecording(f"the MP3 made of it does not decode ({error})") from None
    seconds = info.num_frames / info.sample_rate
    if not -0.05 <= seconds - expected <= MAX_PADDING:
        raise CorruptRecording(f"the MP3 lasts {seconds:.2f} s, the WAV {expected:.2f} s")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        partial.write_bytes(mp3)
        partial.rename(target)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
    if delete_source:
        source.unlink(missing_ok=True)
    return Converted(source, target, expected, len(mp3))
