"""What the 3CX driver has read and the monitor has not taken yet, in order.

The driver cannot slow the PBX: Call Control's socket must be read as it comes, or 3CX drops it
and the calls in between are seen only as the next snapshot shows them. So a monitor that falls
behind (a CPU shared with a busy broker, a burst of calls) leaves the updates here: the first
MEMORY in memory, the rest in a SQLite file beside the outbox, taken back in order as the monitor
catches up. Memory stays bounded whatever the PBX sends; `waiting` and `on_disk` are on
`/metrics`. The file holds nothing a restart needs (the monitor's own checkpoint and a fresh
snapshot do that): it is emptied at start.
"""

import asyncio
import contextlib
import logging
import sqlite3
from collections import deque
from pathlib import Path
from typing import Any, get_args

from pydantic import TypeAdapter

from shared.sqlite import open_database

from ..updates import PbxUpdate

logger = logging.getLogger(__name__)

MEMORY = 5000  # updates kept in memory (a participant update takes ~1 kB)
REFILL = 1000  # taken back from the file at a time
KINDS: dict[str, TypeAdapter[Any]] = {kind.__name__: TypeAdapter(kind) for kind in get_args(PbxUpdate)}
SCHEMA = "CREATE TABLE IF NOT EXISTS backlog (n INTEGER PRIMARY KEY, kind TEXT NOT NULL, body BLOB NOT NULL);"


class Backlog:
    def __init__(self, path: Path | None, memory: int = MEMORY) -> None:
        """`path` None: memory only, unbounded (a driver in a test)."""
        self._memory = memory
        self._front: deque[PbxUpdate] = deque()  # the oldest, in memory
        self._tail: deque[PbxUpdate] = deque()  # behind what is on disk, when the disk refused them
        self._db = (
            None if path is None else open_database(path, SCHEMA, "the driver's backlog", synchronous="OFF")
        )
        if self._db is not None:
            self._db.execute("DELETE FROM backlog")
        self._taken = 0  # rows up to this one are back in memory
        self.on_disk = 0
        self._arrived = asyncio.Event()

    @property
    def waiting(self) -> int:
        return len(self._front) + self.on_disk + len(self._tail)

    def empty(self) -> bool:
        return not self.waiting

    def put(self, update: PbxUpdate) -> None:
        if self._db is None or (not self.on_disk and not self._tail and len(self._front) < self._memory):
            self._front.append(update)
        elif self._tail or not self._spill(self._db, update):
            self._tail.append(update)
        self._arrived.set()

    def get_nowait(self) -> PbxUpdate:
        if not self._front:
            if self.on_disk:
                self._refill()
            else:
                self._front, self._tail = self._tail, self._front
        if not self._front:
            raise asyncio.QueueEmpty
        return self._front.popleft()

    async def get(self) -> PbxUpdate:
        while self.empty():
            self._arrived.clear()
            await self._arrived.wait()
        return self.get_nowait()

    def _spill(self, db: sqlite3.Connection, update: PbxUpdate) -> bool:
        kind = type(update).__name__
        try:
            db.execute(
                "INSERT INTO backlog (kind, body) VALUES (?, ?)", (kind, KINDS[kind].dump_json(update))
            )
        except sqlite3.Error as error:
            if not self._tail:
                logger.warning(
                    "the driver's backlog cannot be written (%s): the updates wait in memory", error
                )
            return False
        self.on_disk += 1
        return True

    def _refill(self) -> None:
        assert self._db is not None
        rows = self._db.execute(
            "SELECT n, kind, body FROM backlog WHERE n > ? ORDER BY n LIMIT ?", (self._taken, REFILL)
        ).fetchall()
        self._front.extend(KINDS[kind].validate_json(body) for _, kind, body in rows)
        self._taken = rows[-1][0]
        self.on_disk -= len(rows)
        if not self.on_disk:
            with contextlib.suppress(sqlite3.Error):  # a full disk: the rows stay, read, till next time
                self._db.execute("DELETE FROM backlog")
                self._taken = 0  # numbering starts again in an empty table
