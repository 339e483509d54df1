"""The services' embedded SQLite databases (the delivery store, the recordings ledger, the
monitor's outbox), opened one way: the folder made, WAL (replicas on one host read while one
writes), the schema applied, and a file that cannot be used reported as an `OSError` that names
it, never as a bare sqlite3 error.

A WAL database's committed pages are copied into its main file by a checkpoint. SQLite runs one
in the committing statement once the WAL holds 1,000 pages: with ~300 webhooks a second that was
every ~0.6 s, and each stopped the service's event loop for ~7 ms (two fsyncs, 4 MB copied). So
here a thread of the connection's own (`checkpointer.py`, with a connection of its own) checkpoints
every CHECKPOINT_EVERY, beside the loop: sqlite3 lets go of the GIL while SQLite works. The
writer still checkpoints itself past BACKSTOP_PAGES, should the thread fall that far behind. A
checkpoint only moves what is committed already, so what survives a crash is the same.
"""

import sqlite3
import time
from pathlib import Path

from .checkpointer import Checkpointer, Connection

BUSY_TIMEOUT = 10.0  # seconds a statement waits for another connection's lock
CHECKPOINT_EVERY = 1.0  # seconds between the checkpointer's turns
BACKSTOP_PAGES = 25_000  # WAL pages (~100 MB) past which the writer checkpoints itself
WAL_KEPT = 32 * 2**20  # bytes of an emptied WAL file kept for reuse; the rest is given back


def open_database(path: Path, schema: str, what: str, *, synchronous: str = "FULL") -> "Connection":
    """`what` names the database in errors ("the delivery store"); ':memory:' for a scratch one."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            return _open(path, schema, synchronous)
        except sqlite3.OperationalError as error:
            # replicas starting together: switching a new file to WAL does not wait for the
            # other's lock (SQLite's busy timeout does not cover it), so wait here
            if "locked" in str(error) and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            raise OSError(f"{what} {path} cannot be used: {error}") from None
        except (sqlite3.Error, OSError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise OSError(f"{what} {path} cannot be used: {reason}") from None


def _open(path: Path, schema: str, synchronous: str) -> Connection:
    in_memory = str(path) == ":memory:"
    if not in_memory:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT, factory=Connection)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(schema)
        if not in_memory:
            db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
            db.execute(f"PRAGMA journal_size_limit={WAL_KEPT}")
            db.checkpointer = Checkpointer(path, CHECKPOINT_EVERY, db)
    except BaseException:
        db.close()
        raise
    return db
