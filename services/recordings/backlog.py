"""`callbridge recordings convert DIR`: convert a folder of existing WAVs, with a progress bar."""

import sys
import time
from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .transcode import Converted, CorruptRecording, processes, transcode


@dataclass
class Summary:
    converted: list[Converted] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        audio = sum(c.seconds for c in self.converted)
        lines = [
            f"{len(self.converted)} converted ({audio / 3600:.2f} h of audio, "
            f"{sum(c.bytes for c in self.converted) / 1e6:.1f} MB) in {self.seconds:.1f} s"
            + (f", {audio / self.seconds:.0f}× real time" if self.seconds and audio else "")
            + f"; {len(self.failed)} failed"
        ]
        lines += [f"  failed: {path}: {reason}" for path, reason in self.failed]
        return "\n".join(lines)


def convert_folder(
    source: Path, target: Path, *, bitrate: int, quality: int, workers: int, out: TextIO = sys.stderr
) -> Summary:
    """Every `*.wav` under `source` → the same relative path under `target`, `.mp3`."""
    wavs = sorted(source.rglob("*.wav"))
    summary = Summary()
    began = time.perf_counter()
    with processes(workers) as pool:
        jobs: dict[Future[Converted], Path] = {
            pool.submit(
                transcode, wav, target / wav.relative_to(source).with_suffix(".mp3"), bitrate, quality
            ): wav
            for wav in wavs
        }
        for done, job in enumerate(as_completed(jobs), 1):
            try:
                summary.converted.append(job.result())
            except CorruptRecording as error:
                summary.failed.append((jobs[job], str(error)))
            except OSError as error:  # a file that cannot be read or written: that file failed
                summary.failed.append((jobs[job], error.strerror or str(error)))
            _progress(out, done, len(wavs))
    summary.seconds = time.perf_counter() - began
    if wavs:
        out.write("\n")
    return summary


def _progress(out: TextIO, done: int, total: int, width: int = 30) -> None:
    filled = width * done // total
    out.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} files")
    out.flush()
