"""The monitor's durable outbox: an event counts as published once it is in this SQLite file
(`[monitor] outbox`, WAL); `Relay` sends the file's events to the bus in order, and deletes them
once the broker has confirmed them. A broker away for minutes, or hours, costs disk, not events;
a monitor killed at any instruction sends, when it starts again, what was never confirmed, with
the same event ids (the consumers drop what they already had: README, "Failure modes").

With the events the file keeps the call tracker's state that made them (`checkpoint.py`: the
calls in progress, the run's source and sequence number), in the same transaction, so that a
restarted monitor goes on with each call under its chain id and with the next sequence number.

One file per monitor: it is the monitor's own state, never shared between hosts.
"""

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.bus import Bus, PublishError
from shared.event_base import Event
from shared.events import encode_event, parse_event
from shared.sqlite import open_database

logger = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    body BLOB NOT NULL,
    added REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS calls (callid INTEGER PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS run (
    id INTEGER PRIMARY KEY CHECK (id = 1), source TEXT NOT NULL, seq INTEGER NOT NULL
);
"""
BATCH = 500  # events sent per confirm round
FRESH = 4 * BATCH  # events kept in memory as appended (beyond: read back from the file)
RETRY_FIRST, RETRY_MAX = 1.0, 30.0  # seconds between sends after the broker refused a batch


@dataclass(frozen=True)
class Saved:
    """A monitor run as its outbox left it: its source, its last sequence number, and the saved
    state of each call it had in progress (`checkpoint.py`)."""

    source: str
    seq: int
    calls: list[str]


@dataclass(frozen=True)
class Changes:
    """What one PBX update changed in the tracker, saved with the events it made."""

    source: str
    seq: int
    calls: dict[int, str]  # call number → its saved state
    gone: list[int]  # calls that ended


@dataclass(frozen=True)
class Backlog:
    events: int
    oldest: float | None  # seconds the oldest unconfirmed event has waited


class Outbox:
    def __init__(self, path: Path) -> None:
        # synchronous=NORMAL in WAL: a committed event survives the process being killed at any
        # instruction; a power cut may lose the last commits (README, "Failure modes")
        self._db = open_database(path, SCHEMA, "the monitor's outbox", synchronous="NORMAL")
        self.added = asyncio.Event()  # set on every append: the relay wakes
        self.writable = True  # the last append succeeded (readiness)
        self._fresh: dict[int, Event] = {}  # id → the event appended, until the relay takes it

    def append(self, events: Sequence[Event], changes: Changes | None = None) -> None:
        """Keep `events`, and the tracker's `changes` that made them, in one transaction. Raises
        OSError (a full disk, say): nothing kept."""
        now = time.time()
        rows = [(encode_event(event), now) for event in events]
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT INTO outbox (body, added) VALUES (?, ?)", rows)
                (last,) = self._db.execute("SELECT last_insert_rowid()").fetchone()
                if changes is not None:
                    self._save(changes)
        except sqlite3.Error as error:
            self.writable = False
            raise OSError(f"the monitor's outbox cannot keep events: {error}") from None
        if events and len(self._fresh) + len(events) <= FRESH:
            self._fresh.update(zip(range(last - len(events) + 1, last + 1), events, strict=True))
        self.writable = True
        self.added.set()

    def _save(self, changes: Changes) -> None:
        db = self._db
        db.executemany("INSERT OR REPLACE INTO calls (callid, state) VALUES (?, ?)", changes.calls.items())
        db.executemany("DELETE FROM calls WHERE callid = ?", [(n,) for n in changes.gone])
        db.execute(
            "INSERT OR REPLACE INTO run (id, source, seq) VALUES (1, ?, ?)", (changes.source, changes.seq)
        )

    def saved(self) -> Saved | None:
        """The run this outbox's monitor left, if it saved one."""
        row = self._db.execute("SELECT source, seq FROM run").fetchone()
        if row is None:
            return None
        calls = [state for (state,) in self._db.execute("SELECT state FROM calls ORDER BY callid")]
        return Saved(row[0], row[1], calls)

    def forget_run(self) -> None:
        """A new run begins: the calls a run before it saved are not to be resumed."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM calls")
            self._db.execute("DELETE FROM run")

    def pending(self, limit: int = BATCH) -> list[tuple[int, Event, bytes]]:
        """The oldest unconfirmed events, in order: (id, event, body). An event appended by this
        process comes as it was (not parsed again from its body)."""
        rows = self._db.execute("SELECT id, body FROM outbox ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(n, self._event(n, body), body) for n, body in rows]

    def _event(self, n: int, body: bytes) -> Event:
        fresh = self._fresh.pop(n, None)
        return fresh if fresh is not None else parse_event(body)

    def confirmed(self, last: int) -> None:
        """Every event up to id `last` reached the broker."""
        with self._db:
            self._db.execute("DELETE FROM outbox WHERE id <= ?", (last,))

    def backlog(self) -> Backlog:
        first, last = self._db.execute("SELECT min(id), max(id) FROM outbox").fetchone()
        if first is None:
            return Backlog(0, None)
        (added,) = self._db.execute("SELECT added FROM outbox WHERE id = ?", (first,)).fetchone()
        return Backlog(last - first + 1, max(0.0, time.time() - added))

    def close(self) -> None:
        self._db.close()


class Relay:
    """Sends the outbox's events to the bus in order, a batch at a time: a batch the broker did not
    confirm is sent again, whole and in order, until it is (its events keep their ids). Anything
    else that goes wrong is logged and tried again: the relay never stops by itself."""

    def __init__(self, outbox: Outbox, bus: Bus) -> None:
        self._outbox = outbox
        self._bus = bus
        self._progress = asyncio.Condition()
        self._empty = False

    async def run(self) -> None:
        delay = RETRY_FIRST
        while True:
            try:
                sent = await self._round()
            except Exception as error:
                level = logging.WARNING if isinstance(error, PublishError) else logging.ERROR
                logger.log(
                    level,
                    "events wait in the outbox (%s); sending again in %g s",
                    error,
                    delay,
                    exc_info=level == logging.ERROR,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)
                continue
            if sent:
                delay = RETRY_FIRST
            else:
                await self._outbox.added.wait()

    async def drained(self) -> None:
        """Return once every event kept so far has been confirmed."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._empty and not self._outbox.added.is_set())

    async def _round(self) -> int:
        """Send the oldest batch; how many were confirmed (0: the outbox was empty)."""
        self._outbox.added.clear()
        rows = self._outbox.pending()
        if rows:
            self._empty = False  # not drained while this batch waits for its confirm
            for _, event, body in rows:
                await self._bus.publish(event, body)
            await self._bus.flush()
            self._outbox.confirmed(rows[-1][0])
        async with self._progress:
            self._empty = not rows
            self._progress.notify_all()
        return len(rows)
