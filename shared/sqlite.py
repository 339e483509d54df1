"""The services' embedded SQLite databases (the delivery store, the recordings ledger), opened one
way: the folder made, WAL (replicas on one host read while one writes), the schema applied, and
a file that cannot be used reported as an `OSError` that names it, never as a bare sqlite3 error."""

import sqlite3
from pathlib import Path


def open_database(path: Path, schema: str, what: str, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """`what` names the database in errors ("the delivery store"); ':memory:' for a scratch one."""
    try:
        if str(path) != ":memory:":
            path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), isolation_level=None, timeout=10)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.executescript(schema)
    except (sqlite3.Error, OSError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise OSError(f"{what} {path} cannot be used: {reason}") from None
    return db
