"""Retention: MP3s older than N days leave the archive, every night and at start-up, and so do
conversions' unfinished `.part` files older than PART_AFTER (a worker killed mid-write, a disk
that filled up)."""

import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.chores import Chore

logger = logging.getLogger(__name__)
PART_AFTER = 3600.0  # seconds: a conversion writes its .part in well under a second


def prune(archive: Path, days: float, now: float) -> list[Path]:
    """Delete archive files last modified more than `days` ago (never a younger one), and day
    folders left empty; return what was deleted."""
    cutoff = now - days * 86400
    removed: list[Path] = []
    if not archive.is_dir():
        return removed
    for day in sorted(p for p in archive.iterdir() if p.is_dir()):
        for pattern, before in (("*.mp3", cutoff), (".*.part", now - PART_AFTER)):
            for path in sorted(day.glob(pattern)):
                if _modified(path) < before:
                    path.unlink(missing_ok=True)
                    removed.append(path)
        if not any(day.iterdir()):
            with contextlib.suppress(OSError):  # another replica's work meanwhile
                day.rmdir()
    for path in removed:
        logger.info("retention: removed %s", path)
    return removed


def _modified(path: Path) -> float:
    """`path`'s modification time; infinity when another replica removed it meanwhile."""
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def next_run(now: datetime, hour: int) -> datetime:
    """The next `hour`:00 after `now` (both PBX-local)."""
    run = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return run if run > now else run + timedelta(days=1)


def nightly(
    archive: Path, days: float, hour: int, zone: ZoneInfo, wall: Callable[[], float] = time.time
) -> Chore:
    """Prune at once, then every night at `hour` (PBX-local). Ages are file ages, on `wall`: the
    clock the file system stamps them with."""

    async def step() -> None:
        removed = prune(archive, days, wall())
        logger.info("retention: %d recording(s) older than %g days removed", len(removed), days)

    return Chore("recordings retention", step, lambda now: next_run(now.astimezone(zone), hour))
