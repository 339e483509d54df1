"""The monitor's durable outbox: an event counts as published once it is in this SQLite file
(`[monitor] outbox`, WAL); `Relay` sends the file's events to the bus in order, each alone, and
then many to a message for the api and recordings (`pbx.batch`); it deletes them once the broker
has confirmed both. A broker away for minutes, or hours, costs disk, not events; a monitor killed
at any instruction sends, when it starts again, what was never confirmed, with the same event ids
(the consumers drop what they already had: README, "Failure modes").

With the events the file keeps the call tracker's state that made them (`checkpoint.py`: the
calls in progress, the run's source and sequence number), in the same transaction, so that a
restarted monitor goes on with each call under its chain id and with the next sequence number.

One file per monitor: it is the monitor's own state, never shared between hosts.
"""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.bus import Bus, PublishError
from shared.event_base import Event
from shared.events import BATCH_KEY, CallsChanged, encode_batch, encode_event, parse_event
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
CREATE TABLE IF NOT EXISTS relayed (
    id INTEGER PRIMARY KEY CHECK (id = 1), sent INTEGER NOT NULL, batched INTEGER NOT NULL
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
        # the last event the broker confirmed alone, and in a batch: the file keeps the events
        # after `batched` (those up to `sent` wait for their batch)
        row = self._db.execute("SELECT sent, batched FROM relayed").fetchone()
        self._sent: int = row[0] if row else 0
        self._batched: int = row[1] if row else 0

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
        rows = self._db.execute(
            "SELECT id, body FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (self._sent, limit)
        ).fetchall()
        return [(n, self._event(n, body), body) for n, body in rows]

    def _event(self, n: int, body: bytes) -> Event:
        fresh = self._fresh.pop(n, None)
        return fresh if fresh is not None else parse_event(body)

    @property
    def sent(self) -> int:
        """The id of the last event the broker confirmed alone."""
        return self._sent

    def unbatched(self, through: int, limit: int = BATCH) -> list[tuple[int, bytes]]:
        """The oldest events up to id `through` not yet in a batch, in order: (id, body)."""
        return self._db.execute(
            "SELECT id, body FROM outbox WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
            (self._batched, through, limit),
        ).fetchall()

    def confirmed(self, sent: int | None = None, batched: int | None = None) -> None:
        """The broker confirmed every event up to id `sent` alone, and up to id `batched` in a
        batch too (None: no further); the file lets go of those."""
        sent, batched = sent or self._sent, batched or self._batched
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM outbox WHERE id <= ?", (batched,))
            self._db.execute(
                "INSERT OR REPLACE INTO relayed (id, sent, batched) VALUES (1, ?, ?)", (sent, batched)
            )
        self._sent, self._batched = sent, batched

    def backlog(self) -> Backlog:
        """The events not yet confirmed alone."""
        first, last = self._db.execute(
            "SELECT min(id), max(id) FROM outbox WHERE id > ?", (self._sent,)
        ).fetchone()
        if first is None:
            return Backlog(0, None)
        (added,) = self._db.execute("SELECT added FROM outbox WHERE id = ?", (first,)).fetchone()
        return Backlog(last - first + 1, max(0.0, time.time() - added))

    def close(self) -> None:
        self._db.close()


class Relay:
    """Sends the outbox's events to the bus in order, up to `BATCH` to a confirm round: a round the
    broker did not confirm is sent again, whole and in order, until it is (its events keep their
    ids). `every` seconds after the first of them went, or with the calls' states (which waited
    that long already), the events sent since the last time go once more in one `pbx.batch`,
    with the round then due (the api replicas and the recordings ledger take them so: README,
    "Running the monitor"); the outbox forgets an event once its batch is confirmed too, so a
    monitor killed in between sends the batch when it starts again, and not the event alone
    again. Anything else that goes wrong is logged and tried again: the
    relay never stops by itself."""

    def __init__(
        self, outbox: Outbox, bus: Bus, every: float = 0.0, sent: Callable[[], None] = lambda: None
    ) -> None:
        self._outbox = outbox
        self._bus = bus
        self._every = every
        self._batch_sent = sent  # counts the batches (metrics)
        self._progress = asyncio.Condition()
        self._empty = False
        # when the next batch is due (monotonic seconds); None: no event waits for one
        self._batch_due = time.monotonic() if outbox.unbatched(outbox.sent, 1) else None

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
                await self._idle()

    async def drained(self) -> None:
        """Return once every event kept so far has been confirmed, alone and in a batch."""
        async with self._progress:
            await self._progress.wait_for(lambda: self._empty and not self._outbox.added.is_set())

    async def _idle(self) -> None:
        """Until an event is added, or the batch is due."""
        if self._batch_due is None:
            await self._outbox.added.wait()
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._batch_due - time.monotonic()):
                await self._outbox.added.wait()

    async def _round(self) -> int:
        """Send the oldest events alone and, if it is due, the batch of those not yet in one (these
        too), and wait for the broker's confirms of both at once: a batch never holds up the
        events that come after it. How many messages were confirmed (0: nothing was due)."""
        self._outbox.added.clear()
        rows = self._outbox.pending()
        if rows:
            self._empty = False  # not drained while these wait for their confirm
            for _, event, body in rows:
                await self._bus.publish(event, body)
            if self._batch_due is None:
                self._batch_due = time.monotonic() + self._every
        # due `every` after its first event, or with the calls' states, gathered that long already
        states = any(isinstance(event, CallsChanged) for _, event, _ in rows)
        due = self._batch_due is not None and (states or time.monotonic() >= self._batch_due)
        sent = rows[-1][0] if rows else None  # the last event of this round, once confirmed
        batch = self._outbox.unbatched(self._outbox.sent if sent is None else sent) if due else []
        if batch:
            last = Event.model_validate_json(batch[-1][1])  # its source, number and time: all it takes
            await self._bus.publish_raw(BATCH_KEY, encode_batch([body for _, body in batch], last))
        if rows or batch:
            await self._bus.flush()
            self._outbox.confirmed(sent, batch[-1][0] if batch else None)
        if due:  # only once confirmed: a batch the broker refused is due again at once
            self._batch_due = time.monotonic() if len(batch) == BATCH else None
            if batch:
                self._batch_sent()
        async with self._progress:
            self._empty = not rows and self._batch_due is None
            self._progress.notify_all()
        return len(rows) + (1 if batch else 0)
