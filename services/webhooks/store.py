"""The webhooks service's durable state, shared by its replicas: SQLite on one host (the
default), PostgreSQL across hosts (`[webhooks] database = postgresql://…`; `shared.database`).

- `attempts`: every delivery attempt (time, endpoint, event, status, latency, truncated answer).
- `dead`: deliveries whose retries ran out, or whose endpoint is disabled; listed and replayed.
- `blocked` / `held`: per-chain order. While one delivery of an (endpoint, chain) waits for a
  retry, it is that key's blocker (kept here too, as the retry that is awaited) and later
  deliveries of the key are held here, in arrival order, until the blocker is delivered or
  dead-lettered.
- `disabled`: endpoints switched off by a 410.
- `memory`: per (endpoint, chain), what templated endpoints remember: the chain's events
  delivered so far and the ids the CRM answered with (`remote`), for the later requests.

Every change is its own transaction, so a crash leaves a consistent state; the dispatcher orders
its steps so that a crash at any point costs at most a repeated attempt (same webhook-id).
"""

from dataclasses import dataclass
from pathlib import Path

from shared.database import Database, open_database

SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id {serial}, at DOUBLE PRECISION NOT NULL, endpoint TEXT NOT NULL, event_id TEXT NOT NULL,
    event_type TEXT NOT NULL, chain TEXT NOT NULL, attempt INTEGER NOT NULL, status INTEGER,
    outcome TEXT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL, response TEXT NOT NULL,
    request TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS attempts_at ON attempts (at);
CREATE TABLE IF NOT EXISTS dead (
    id {serial}, at DOUBLE PRECISION NOT NULL, endpoint TEXT NOT NULL, job TEXT NOT NULL,
    event_type TEXT NOT NULL, chain TEXT NOT NULL, reason TEXT NOT NULL, replayed_at DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS blocked (
    key TEXT PRIMARY KEY, job_id TEXT NOT NULL, due DOUBLE PRECISION NOT NULL, job TEXT);
CREATE TABLE IF NOT EXISTS held (id {serial}, key TEXT NOT NULL, job TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS held_key ON held (key, id);
CREATE TABLE IF NOT EXISTS disabled (
    endpoint TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS taken (job_id TEXT PRIMARY KEY, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS taken_at ON taken (at);
CREATE TABLE IF NOT EXISTS memory (
    key TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (key, name));
CREATE INDEX IF NOT EXISTS memory_at ON memory (at);
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
    request: str = ""  # what was sent, without its secrets (`formats.described`)
    id: int = 0  # its row, once logged


@dataclass(frozen=True, slots=True)
class EndpointHealth:
    """An endpoint's attempts since some time: how many, how many delivered, the last failure."""

    endpoint: str
    attempts: int
    delivered: int
    last_error_at: float | None
    last_error: str


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
    """`await DeliveryStore.open(address)`: a path (SQLite) or a postgresql:// URL."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, address: str | Path) -> "DeliveryStore":
        db = await open_database(address, SCHEMA, "the delivery store")
        # a store of a version before it kept the awaited retry, or the requests sent
        await db.add_columns("blocked", ["job TEXT"])
        await db.add_columns("attempts", ["request TEXT NOT NULL DEFAULT ''"])
        return cls(db)

    async def close(self) -> None:
        await self._db.close()

    # --- order -----------------------------------------------------------------------------------

    async def blocker(self, key: str) -> str | None:
        row = await self._db.one("SELECT job_id FROM blocked WHERE key = ?", (key,))
        return row[0] if row else None

    async def block(self, key: str, job_id: str, due: float, retry: str | None = None) -> None:
        """`job_id` blocks `key` until `due`; `retry`: the job (JSON) whose retry is awaited, None
        while the key's held jobs are being released."""
        await self._db.execute(
            "INSERT INTO blocked (key, job_id, due, job) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key) DO UPDATE"
            " SET job_id = excluded.job_id, due = excluded.due, job = excluded.job",
            (key, job_id, due, retry),
        )

    async def state(self, key: str, job_id: str) -> tuple[tuple[str, str | None] | None, bool]:
        """In one look (a round trip per delivery): the key's blocker and the retry (job JSON)
        it waits for, if any; and whether a copy of `job_id` was handled already (taken:
        delivered, held, retried or buried)."""
        row = await self._db.one(
            "SELECT (SELECT job_id FROM blocked WHERE key = ?), (SELECT job FROM blocked WHERE key = ?),"
            " EXISTS (SELECT 1 FROM taken WHERE job_id = ?)",
            (key, key, job_id),
        )
        assert row is not None
        blocker, retry, taken = row
        return ((blocker, retry) if blocker is not None else None), bool(taken)

    async def unblock(self, key: str) -> None:
        await self._db.execute("DELETE FROM blocked WHERE key = ?", (key,))

    async def overdue(self, before: float) -> list[tuple[str, str]]:
        """(key, blocker) of blocks whose blocker should have come back before `before`."""
        rows = await self._db.all("SELECT key, job_id FROM blocked WHERE due < ?", (before,))
        return [(key, job_id) for key, job_id in rows]

    async def hold(self, key: str, job: str) -> None:
        await self._db.execute("INSERT INTO held (key, job) VALUES (?, ?)", (key, job))

    async def next_held(self, key: str) -> tuple[int, str] | None:
        row = await self._db.one("SELECT id, job FROM held WHERE key = ? ORDER BY id LIMIT 1", (key,))
        return (row[0], row[1]) if row else None

    async def forget_held(self, held_id: int) -> None:
        await self._db.execute("DELETE FROM held WHERE id = ?", (held_id,))

    # --- jobs already handled ------------------------------------------------------------------------

    async def take(self, job_id: str, at: float) -> None:
        await self._db.execute(
            "INSERT INTO taken (job_id, at) VALUES (?, ?) ON CONFLICT DO NOTHING", (job_id, at)
        )

    # --- what templated endpoints remember of a chain ----------------------------------------------

    async def recall(self, key: str) -> dict[str, str]:
        return dict(await self._db.all("SELECT name, value FROM memory WHERE key = ?", (key,)))

    async def remember(self, key: str, values: dict[str, str], at: float) -> None:
        await self._db.execute_many(
            "INSERT INTO memory (key, name, value, at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (key, name) DO UPDATE SET value = excluded.value, at = excluded.at",
            [(key, name, value, at) for name, value in values.items()],
        )

    # --- attempts and dead letters ------------------------------------------------------------------

    async def log_attempt(self, attempt: Attempt) -> None:
        await self._db.execute(
            "INSERT INTO attempts (at, endpoint, event_id, event_type, chain, attempt, status, outcome,"
            " latency_ms, response, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                attempt.request,
            ),
        )

    async def attempts(
        self,
        *,
        endpoint: str | None = None,
        since: float = 0.0,
        limit: int = 100,
        chain: str | None = None,
        outcome: str | None = None,
    ) -> list[Attempt]:
        """The latest attempts first; each filter given narrows them."""
        query = "SELECT at, endpoint, event_id, event_type, chain, attempt, status, outcome, latency_ms,"
        query += " response, request, id FROM attempts WHERE at >= ?"
        params: list[object] = [since]
        for column, value in (("endpoint", endpoint), ("chain", chain), ("outcome", outcome)):
            if value:
                query += f" AND {column} = ?"  # a column name of this list, never the caller's text
                params.append(value)
        rows = await self._db.all(query + " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [Attempt(*row) for row in rows]

    async def health(self, since: float) -> list[EndpointHealth]:
        """Each endpoint with attempts since `since`: its counts and its last failed attempt."""
        rows = await self._db.all(
            "SELECT endpoint, COUNT(*), SUM(CASE WHEN outcome = 'Delivered' THEN 1 ELSE 0 END),"
            " MAX(CASE WHEN outcome <> 'Delivered' THEN id END)"
            " FROM attempts WHERE at >= ? GROUP BY endpoint ORDER BY endpoint",
            (since,),
        )
        found = []
        for endpoint, count, delivered, last_failed in rows:
            error = await self._db.one(
                "SELECT at, status, response FROM attempts WHERE id = ?", (last_failed,)
            )
            at, text = (error[0], f"{error[1] or 'no answer'}: {error[2]}") if error else (None, "")
            found.append(EndpointHealth(endpoint, count, int(delivered or 0), at, text))
        return found

    async def prune_attempts(self, before: float) -> int:
        """Forget the attempts made before `before`, and which jobs were handled then."""
        await self._db.execute("DELETE FROM taken WHERE at < ?", (before,))
        await self._db.execute("DELETE FROM memory WHERE at < ?", (before,))
        return await self._db.execute("DELETE FROM attempts WHERE at < ?", (before,))

    async def bury(
        self, at: float, endpoint: str, job: str, event_type: str, chain: str, reason: str
    ) -> None:
        await self._db.execute(
            "INSERT INTO dead (at, endpoint, job, event_type, chain, reason) VALUES (?, ?, ?, ?, ?, ?)",
            (at, endpoint, job, event_type, chain, reason),
        )

    async def dead(
        self,
        *,
        endpoint: str | None = None,
        since: float = 0.0,
        dead_id: int | None = None,
        limit: int | None = None,
    ) -> list[DeadDelivery]:
        """The dead letters not replayed yet, oldest first (the order a replay sends them in)."""
        query = "SELECT id, at, endpoint, job, event_type, chain, reason FROM dead"
        query += " WHERE replayed_at IS NULL AND at >= ?"
        params: list[object] = [since]
        if endpoint:
            query += " AND endpoint = ?"
            params.append(endpoint)
        if dead_id is not None:
            query += " AND id = ?"
            params.append(dead_id)
        query += " ORDER BY id" + (" LIMIT ?" if limit is not None else "")
        rows = await self._db.all(query, (*params, *([limit] if limit is not None else [])))
        return [DeadDelivery(*row) for row in rows]

    async def claim_replay(self, dead_id: int, at: float) -> bool:
        """Mark a dead letter replayed, unless another replay did: True when this one did."""
        sql = "UPDATE dead SET replayed_at = ? WHERE id = ? AND replayed_at IS NULL"
        return await self._db.execute(sql, (at, dead_id)) == 1

    async def release_replay(self, dead_id: int) -> None:
        """A claimed replay that could not be sent: a dead letter again."""
        await self._db.execute("UPDATE dead SET replayed_at = NULL WHERE id = ?", (dead_id,))

    # --- endpoints ----------------------------------------------------------------------------------

    async def disable(self, at: float, endpoint: str, reason: str) -> bool:
        """Disable `endpoint`; False when it was disabled already (the first reason stays)."""
        return bool(
            await self._db.execute(
                "INSERT INTO disabled (endpoint, at, reason) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (endpoint, at, reason),
            )
        )

    async def enable(self, endpoint: str) -> None:
        await self._db.execute("DELETE FROM disabled WHERE endpoint = ?", (endpoint,))

    async def disabled(self) -> dict[str, str]:
        return dict(await self._db.all("SELECT endpoint, reason FROM disabled"))
