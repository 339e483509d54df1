"""The webhooks service's durable state, shared by its replicas on one host (SQLite, WAL).

- `attempts`: every delivery attempt (time, endpoint, event, status, latency, truncated answer).
- `dead`: deliveries whose retries ran out, or whose endpoint is disabled; listed and replayed.
- `blocked` / `held`: per-chain order. While one delivery of an (endpoint, chain) waits for a
  retry, it is that key's blocker and later deliveries of the key are held here, in arrival
  order, until the blocker is delivered or dead-lettered.
- `disabled`: endpoints switched off by a 410.

Every change is its own transaction, so a crash leaves a consistent state; the dispatcher orders
its steps so that a crash at any point costs at most a repeated attempt (same webhook-id).
"""

from dataclasses import dataclass
from pathlib import Path

from shared.sqlite import open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, endpoint TEXT NOT NULL, event_id TEXT NOT NULL,
    event_type TEXT NOT NULL, chain TEXT NOT NULL, attempt INTEGER NOT NULL, status INTEGER,
    outcome TEXT NOT NULL, latency_ms REAL NOT NULL, response TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS attempts_at ON attempts (at);
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY, at REAL NOT NULL, endpoint TEXT NOT NULL, job TEXT NOT NULL,
    event_type TEXT NOT NULL, chain TEXT NOT NULL, reason TEXT NOT NULL, replayed_at REAL);
CREATE TABLE IF NOT EXISTS blocked (key TEXT PRIMARY KEY, job_id TEXT NOT NULL, due REAL NOT NULL);
CREATE TABLE IF NOT EXISTS held (id INTEGER PRIMARY KEY, key TEXT NOT NULL, job TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS held_key ON held (key, id);
CREATE TABLE IF NOT EXISTS disabled (endpoint TEXT PRIMARY KEY, at REAL NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS taken (job_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS taken_at ON taken (at);
"""

RESPONSE_LIMIT = 2048


@dataclass(frozen=True, slots=True)
class Attempt:
    at: float
    endpoint: str
    event_id: str
    event_type: str
    chain: str
    attempt: int
    status: int | None
    outcome: str
    latency_ms: float
    response: str


@dataclass(frozen=True, slots=True)
class DeadDelivery:
    id: int
    at: float
    endpoint: str
    job: str
    event_type: str
    chain: str
    reason: str


class DeliveryStore:
    def __init__(self, path: Path) -> None:
        self._db = open_database(path, SCHEMA, "the delivery store", synchronous="NORMAL")

    def close(self) -> None:
        self._db.close()

    # --- order -----------------------------------------------------------------------------------

    def blocker(self, key: str) -> str | None:
        row = self._db.execute("SELECT job_id FROM blocked WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def block(self, key: str, job_id: str, due: float) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO blocked (key, job_id, due) VALUES (?, ?, ?)", (key, job_id, due)
        )

    def unblock(self, key: str) -> None:
        self._db.execute("DELETE FROM blocked WHERE key = ?", (key,))

    def overdue(self, before: float) -> list[tuple[str, str]]:
        """(key, blocker) of blocks whose blocker should have come back before `before`."""
        return self._db.execute("SELECT key, job_id FROM blocked WHERE due < ?", (before,)).fetchall()

    def hold(self, key: str, job: str) -> None:
        self._db.execute("INSERT INTO held (key, job) VALUES (?, ?)", (key, job))

    def next_held(self, key: str) -> tuple[int, str] | None:
        row = self._db.execute(
            "SELECT id, job FROM held WHERE key = ? ORDER BY id LIMIT 1", (key,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def forget_held(self, held_id: int) -> None:
        self._db.execute("DELETE FROM held WHERE id = ?", (held_id,))

    # --- jobs already handled ------------------------------------------------------------------------

    def taken(self, job_id: str) -> bool:
        """Whether a copy of this job was handled already (delivered, held, retried or buried)."""
        return self._db.execute("SELECT 1 FROM taken WHERE job_id = ?", (job_id,)).fetchone() is not None

    def take(self, job_id: str, at: float) -> None:
        self._db.execute("INSERT OR IGNORE INTO taken (job_id, at) VALUES (?, ?)", (job_id, at))

    # --- attempts and dead letters ------------------------------------------------------------------

    def log_attempt(self, attempt: Attempt) -> None:
        self._db.execute(
            "INSERT INTO attempts (at, endpoint, event_id, event_type, chain, attempt, status, outcome,"
            " latency_ms, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                attempt.at,
                attempt.endpoint,
                attempt.event_id,
                attempt.event_type,
                attempt.chain,
                attempt.attempt,
                attempt.status,
                attempt.outcome,
                attempt.latency_ms,
                attempt.response[:RESPONSE_LIMIT],
            ),
        )

    def attempts(self, *, endpoint: str | None = None, since: float = 0.0, limit: int = 100) -> list[Attempt]:
        query = (
            "SELECT at, endpoint, event_id, event_type, chain, attempt, status, outcome, latency_ms, response"
        )
        query += " FROM attempts WHERE at >= ?" + (" AND endpoint = ?" if endpoint else "")
        params: tuple[object, ...] = (since, endpoint) if endpoint else (since,)
        rows = self._db.execute(query + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        return [Attempt(*row) for row in rows]

    def prune_attempts(self, before: float) -> int:
        """Forget the attempts made before `before`, and which jobs were handled then."""
        self._db.execute("DELETE FROM taken WHERE at < ?", (before,))
        return self._db.execute("DELETE FROM attempts WHERE at < ?", (before,)).rowcount

    def bury(self, at: float, endpoint: str, job: str, event_type: str, chain: str, reason: str) -> None:
        self._db.execute(
            "INSERT INTO dead (at, endpoint, job, event_type, chain, reason) VALUES (?, ?, ?, ?, ?, ?)",
            (at, endpoint, job, event_type, chain, reason),
        )

    def dead(self, *, endpoint: str | None = None, since: float = 0.0) -> list[DeadDelivery]:
        query = "SELECT id, at, endpoint, job, event_type, chain, reason FROM dead"
        query += " WHERE replayed_at IS NULL AND at >= ?"
        params: tuple[object, ...] = (since,)
        if endpoint:
            query, params = query + " AND endpoint = ?", (since, endpoint)
        return [DeadDelivery(*row) for row in self._db.execute(query + " ORDER BY id", params).fetchall()]

    def mark_replayed(self, dead_id: int, at: float) -> None:
        self._db.execute("UPDATE dead SET replayed_at = ? WHERE id = ?", (at, dead_id))

    # --- endpoints ----------------------------------------------------------------------------------

    def disable(self, at: float, endpoint: str, reason: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO disabled (endpoint, at, reason) VALUES (?, ?, ?)", (endpoint, at, reason)
        )

    def enable(self, endpoint: str) -> None:
        self._db.execute("DELETE FROM disabled WHERE endpoint = ?", (endpoint,))

    def disabled(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT endpoint, reason FROM disabled").fetchall())
