"""Finding finished WAVs in a PBX recordings tree without re-reading years of old files.

A folder is listed again only when its modification time changed (a file was created, renamed
or deleted in it), so a scan costs a `stat` per folder plus one per file still in play. Files
last modified more than `horizon` ago are not considered: a PBX keeps its recordings for years.
A file counts as finished when its size and modification time were the same at two scans and it
is `settle` seconds old (immediately with `settle = 0`).

Ages are measured on `wall`, the clock the file system stamps modification times with (the
system's; a test passes its own), never on the PBX's clock, which a scenario sets years back.
"""

import time
from collections.abc import Callable
from pathlib import Path


class FolderWatch:
    def __init__(
        self, root: Path, *, settle: float, horizon: float, wall: Callable[[], float] = time.time
    ) -> None:
        self._root = root
        self._wall = wall
        self._settle = settle
        self._horizon = horizon
        self._folders: dict[Path, float] = {}  # folder → modification time when last listed
        self._pending: dict[Path, tuple[int, float] | None] = {}  # file → (size, mtime) at the last scan
        self._settled: dict[Path, float] = {}  # files dealt with → their mtime (forgotten past the horizon)

    def finished(self) -> list[Path]:
        now = self._wall()
        self._list_changed_folders(now)
        out = []
        for path, previous in list(self._pending.items()):
            try:
                stat = path.stat()
            except FileNotFoundError:
                del self._pending[path]
                continue
            key = (stat.st_size, stat.st_mtime)
            if self._settle == 0 or (previous == key and now - stat.st_mtime >= self._settle):
                out.append(path)
            self._pending[path] = key
        self._settled = {p: m for p, m in self._settled.items() if now - m < self._horizon}
        return sorted(out)

    def settle(self, path: Path) -> None:
        """`path` was dealt with (taken, or refused for good): never offer it again."""
        key = self._pending.pop(path, None)
        self._settled[path] = key[1] if key else self._wall()

    def stale(self, path: Path) -> bool:
        """True when `path` is older than the horizon (an offered file nobody could place)."""
        key = self._pending.get(path)
        return key is not None and self._wall() - key[1] >= self._horizon

    def _list_changed_folders(self, now: float) -> None:
        folders = [self._root, *self._folders]
        seen: set[Path] = set()
        while folders:
            folder = folders.pop()
            if folder in seen:
                continue
            seen.add(folder)
            try:
                mtime = folder.stat().st_mtime
            except FileNotFoundError:
                self._folders.pop(folder, None)
                continue
            if self._folders.get(folder) == mtime:
                continue
            self._folders[folder] = mtime  # before listing: a file created meanwhile changes it again
            for entry in folder.iterdir():
                if entry.is_dir():
                    folders.append(entry)
                elif (
                    entry.suffix.lower() == ".wav"
                    and entry not in self._pending
                    and entry not in self._settled
                    and now - entry.stat().st_mtime < self._horizon
                ):
                    self._pending[entry] = None
