"""WAV → MP3 speed: the recordings service's converter next to the lame and ffmpeg command lines.

    .venv/bin/python bench/transcode.py [--minutes 10] [--bitrate 32] [--quality 7]

One 10-minute 8 kHz mono 16-bit WAV (a tone with noise, so the encoder has work), converted at
the same bitrate and quality by:
- the service's `transcode()` (lameenc in-process, plus its verification of the result);
- `lame` (the command-line encoder), `-b BITRATE -q QUALITY -m m`;
- pydub, which runs `ffmpeg` (libmp3lame) at the same settings.
Each best of three, in seconds per audio hour and × real time; then the service's throughput with
2 worker processes on 8 such files at once.
"""

import argparse
import math
import platform
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import wave
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from services.recordings.transcode import transcode


def make_wav(path: Path, seconds: int) -> None:
    rng = random.Random(1)
    second = b"".join(
        struct.pack("<h", int(2500 * math.sin(2 * math.pi * 440 * i / 8000) + rng.gauss(0, 300)))
        for i in range(8000)
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        for _ in range(seconds):
            out.writeframesraw(second)


def best_of(runs: int, action: object) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()  # type: ignore[operator]
        times.append(time.perf_counter() - began)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--bitrate", type=int, default=32)
    parser.add_argument("--quality", type=int, default=7)
    args = parser.parse_args()
    seconds = args.minutes * 60
    hours = seconds / 3600
    machine = f"{platform.node()}, Python {platform.python_version()}"
    print(f"machine: {machine}; {args.minutes} min, 8 kHz mono WAV, {args.bitrate} kbit/s, q{args.quality}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        wav = folder / "call.wav"
        make_wav(wav, seconds)
        results: dict[str, float] = {}
        results["callbridge (lameenc, verified)"] = best_of(
            3, lambda: transcode(wav, folder / "service.mp3", args.bitrate, args.quality)
        )
        lame = shutil.which("lame")
        if lame:
            command = [
                lame,
                "--quiet",
                "-b",
                str(args.bitrate),
                "--cbr",
                "-q",
                str(args.quality),
                "-m",
                "m",
                str(wav),
                str(folder / "lame.mp3"),
            ]
            results["lame command line"] = best_of(3, lambda: subprocess.run(command, check=True))
        else:
            print("lame: not installed (apt-get install lame)")
        if shutil.which("ffmpeg"):
            from pydub import AudioSegment

            def pydub() -> None:
                AudioSegment.from_wav(str(wav)).export(
                    str(folder / "pydub.mp3"),
                    format="mp3",
                    bitrate=f"{args.bitrate}k",
                    parameters=["-q:a", str(args.quality)],
                )

            results["pydub (ffmpeg)"] = best_of(3, pydub)
        for label, elapsed in results.items():
            print(f"{label:34} {elapsed / hours:6.2f} s per audio hour, {seconds / elapsed:6.0f}× real time")
        copies = [folder / f"copy{n}.wav" for n in range(8)]
        for copy in copies:
            shutil.copy(wav, copy)
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(transcode, [copies[0]], [folder / "warm.mp3"]))  # start the workers
            began = time.perf_counter()
            list(
                pool.map(
                    transcode,
                    copies,
                    [c.with_suffix(".mp3") for c in copies],
                    [args.bitrate] * 8,
                    [args.quality] * 8,
                )
            )
            elapsed = time.perf_counter() - began
        print(
            f"callbridge, 2 workers, 8 files at once: {8 * seconds / elapsed:,.0f}× real time "
            f"({8 * hours / elapsed * 3600:,.0f} audio hours per hour)"
        )


if __name__ == "__main__":
    main()
