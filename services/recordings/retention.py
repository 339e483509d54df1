"""Retention: MP3s older than N days leave the archive, every night and at start-up."""

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.clock import Clock

logger = logging.getLogger(__name__)


def prune(archive: Path, days: float, now: float) -> list[Path]:
    """Delete archive files last modified more than `days` ago (never a younger one), and day
    folders left empty; return what was deleted."""
    cutoff = now - days * 86400
    removed: list[Path] = []
    if not archive.is_dir():
        return removed
    for day in sorted(p for p in archive.iterdir() if p.is_dir()):
        for path in sorted(day.glob("*.mp3")):
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        if not any(day.iterdir()):
            day.rmdir()
    for path in removed:
        logger.info("retention: removed %s", path)
    return removed


def next_run(now: datetime, hour: int) -> datetime:
    """The next `hour`:00 after `now` (both PBX-local)."""
    run = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    return run if run > now else run + timedelta(days=1)


async def nightly(
    archive: Path, days: float, hour: int, clock: Clock, zone: ZoneInfo, wall: Callable[[], float] = time.time
) -> None:
    """Prune now, then every night at `hour` (PBX-local, on `clock`), for ever. Ages are file
    ages, on `wall`: the clock the file system stamps them with."""
    while True:
        removed = prune(archive, days, wall())
        logger.info("retention: %d recording(s) older than %g days removed", len(removed), days)
        await clock.sleep_until(next_run(clock.now().astimezone(zone), hour))
