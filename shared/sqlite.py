"""The services' embedded SQLite databases (the delivery store, the recordings ledger), opened one
way: the folder made, WAL (replicas on one host read while one writes), the schema applied, and
a file that cannot be used reported as an `OSError` that names it, never as a bare sqlite3 error."""

import sqlite3
import time
from pathlib import Path

BUSY_TIMEOUT = 10.0  # seconds a statement waits for another connection's lock


def open_database(path: Path, schema: str, what: str, *, synchronous: str = "FULL") -> sqlite3.Connection:
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


def _open(path: Path, schema: str, synchronous: str) -> sqlite3.Connection:
    if str(path) != ":memory:":
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(schema)
    except BaseException:
        db.close()
        raise
    return db
