"""The delivery store's contract, on each backend (SQLite file, PostgreSQL schema): per-chain
blocks and held deliveries, the attempt log, dead letters, disabled endpoints, jobs taken; what
one opening wrote the next one reads, and two openings at once (replicas) see one state."""

import asyncio
from dataclasses import replace

from services.webhooks.store import RESPONSE_LIMIT, Attempt, DeliveryStore
from shared.database import open_database


def attempt(at: float, endpoint: str = "crm", status: int | None = 200, response: str = "ok") -> Attempt:
    return Attempt(
        at, endpoint, f"e{at:g}", "call.ringing", "chain-1", 1, status, "Delivered", 12.5, response
    )


async def test_a_block_holds_deliveries_in_arrival_order_until_released(database_address: str) -> None:
    store = await DeliveryStore.open(database_address)
    assert await store.blocker("crm|chain-1") is None
    await store.block("crm|chain-1", "crm/e1", due=100.0)
    for job in ("j2", "j3"):
        await store.hold("crm|chain-1", job)
    assert await store.blocker("crm|chain-1") == "crm/e1" and await store.blocker("crm|chain-2") is None
    await store.block("crm|chain-1", "crm/e2", due=200.0)  # a new blocker replaces the old one
    assert await store.blocker("crm|chain-1") == "crm/e2"
    first = await store.next_held("crm|chain-1")
    assert first is not None and first[1] == "j2"
    await store.forget_held(first[0])
    assert ((await store.next_held("crm|chain-1")) or (0, ""))[1] == "j3"
    assert await store.overdue(before=199.0) == []
    assert await store.overdue(before=201.0) == [("crm|chain-1", "crm/e2")]
    await store.unblock("crm|chain-1")
    assert await store.blocker("crm|chain-1") is None
    await store.close()


async def test_the_attempt_log_lists_newest_first_filters_and_prunes(database_address: str) -> None:
    store = await DeliveryStore.open(database_address)
    for at in (1.0, 2.0, 3.0):
        await store.log_attempt(attempt(at, endpoint="crm" if at != 2.0 else "chat"))
    await store.log_attempt(attempt(4.0, status=None, response="x" * (RESPONSE_LIMIT + 100)))
    assert [a.at for a in await store.attempts()] == [4.0, 3.0, 2.0, 1.0]
    assert [a.at for a in await store.attempts(endpoint="chat")] == [2.0]
    assert [a.at for a in await store.attempts(since=3.0, limit=1)] == [4.0]
    newest = (await store.attempts())[0]
    assert len(newest.response) == RESPONSE_LIMIT and newest.status is None
    assert await store.prune_attempts(before=2.5) == 2
    assert [a.at for a in await store.attempts()] == [4.0, 3.0]
    await store.close()


async def test_dead_letters_are_kept_across_openings_until_replayed(database_address: str) -> None:
    store = await DeliveryStore.open(database_address)
    await store.bury(10.0, "crm", "{job 1}", "call.ended", "chain-1", "gave up after 8 attempts")
    await store.bury(20.0, "chat", "{job 2}", "call.ringing", "chain-2", "410 Gone")
    await store.close()
    again = await DeliveryStore.open(database_address)
    assert [(d.endpoint, d.reason) for d in await again.dead()] == [
        ("crm", "gave up after 8 attempts"),
        ("chat", "410 Gone"),
    ]
    assert [d.job for d in await again.dead(endpoint="chat")] == ["{job 2}"]
    assert [d.job for d in await again.dead(since=15.0)] == ["{job 2}"]
    first = (await again.dead())[0].id
    assert await again.claim_replay(first, 30.0)
    assert not await again.claim_replay(first, 31.0)  # a second replay at once (a double click)
    assert [d.job for d in await again.dead()] == ["{job 2}"]
    await again.release_replay(first)  # it could not be queued: a dead letter again
    assert len(await again.dead()) == 2
    await again.close()


async def test_an_endpoint_is_disabled_until_enabled(database_address: str) -> None:
    store = await DeliveryStore.open(database_address)
    assert await store.disable(5.0, "crm", "410 Gone")
    assert not await store.disable(6.0, "crm", "410 Gone again")  # disabled already: said once
    assert await store.disabled() == {"crm": "410 Gone"}
    await store.enable("crm")
    assert await store.disabled() == {}
    await store.close()


async def test_two_openings_at_once_share_one_state(database_address: str) -> None:
    """Replicas: what one writes (a job taken, a block, a dead letter) the other reads at once."""
    one, other = await DeliveryStore.open(database_address), await DeliveryStore.open(database_address)
    await one.take("crm/e1", 1.0)
    await one.take("crm/e1", 2.0)  # taken twice: still once
    await one.block("crm|chain-1", "crm/e2", due=50.0)
    await one.hold("crm|chain-1", "j3")
    await one.bury(3.0, "crm", "{job}", "call.ended", "chain-9", "gave up")
    assert (await other.state("crm|c", "crm/e1"))[1] and not (await other.state("crm|c", "crm/e2"))[1]
    assert await other.blocker("crm|chain-1") == "crm/e2"
    assert ((await other.next_held("crm|chain-1")) or (0, ""))[1] == "j3"
    assert [d.chain for d in await other.dead()] == ["chain-9"]
    assert await other.prune_attempts(before=1.5) == 0 and not (await other.state("crm|c", "crm/e1"))[1]
    await one.close()
    await other.close()


async def test_a_store_from_before_the_awaited_retry_was_kept_gains_it(database_address: str) -> None:
    """A store made by an earlier version (no `job` in `blocked`) opens, keeps its blocks, and
    keeps the awaited retry from then on."""
    old = await open_database(
        database_address,
        "CREATE TABLE IF NOT EXISTS blocked ("
        " key TEXT PRIMARY KEY, job_id TEXT NOT NULL, due DOUBLE PRECISION NOT NULL);",
        "an earlier store",
    )
    await old.execute("INSERT INTO blocked (key, job_id, due) VALUES (?, ?, ?)", ("crm|c1", "crm/e1", 10.0))
    await old.close()
    store = await DeliveryStore.open(database_address)
    assert await store.state("crm|c1", "crm/e9") == (("crm/e1", None), False)
    await store.block("crm|c2", "crm/e2", due=20.0, retry='{"attempt": 1}')
    assert await store.state("crm|c2", "crm/e9") == (("crm/e2", '{"attempt": 1}'), False)
    await store.close()


async def test_what_a_chain_taught_is_kept_per_key_shared_and_pruned(database_address: str) -> None:
    """Templated endpoints' memory: a later value replaces an earlier one, keys stay apart, a
    second opening (another replica) reads it, and it goes with the attempts of its time."""
    one, other = await DeliveryStore.open(database_address), await DeliveryStore.open(database_address)
    await one.remember("crm|c1", {"call": "17", "event:call.started": "{}"}, at=10.0)
    await one.remember("crm|c1", {"call": "18"}, at=20.0)
    await one.remember("chat|c1", {"call": "99"}, at=30.0)
    assert await other.recall("crm|c1") == {"call": "18", "event:call.started": "{}"}
    assert await other.recall("crm|c2") == {}
    await other.prune_attempts(before=15.0)
    assert await one.recall("crm|c1") == {"call": "18"} and await one.recall("chat|c1") == {"call": "99"}
    await one.close()
    await other.close()


async def test_a_store_from_before_requests_were_logged_gains_them(database_address: str) -> None:
    old = await open_database(
        database_address,
        "CREATE TABLE IF NOT EXISTS attempts (id {serial}, at DOUBLE PRECISION NOT NULL, endpoint TEXT"
        " NOT NULL, event_id TEXT NOT NULL, event_type TEXT NOT NULL, chain TEXT NOT NULL, attempt"
        " INTEGER NOT NULL, status INTEGER, outcome TEXT NOT NULL, latency_ms DOUBLE PRECISION NOT NULL,"
        " response TEXT NOT NULL);",
        "an earlier store",
    )
    await old.execute(
        "INSERT INTO attempts (at, endpoint, event_id, event_type, chain, attempt, status, outcome,"
        " latency_ms, response) VALUES (1, 'crm', 'e1', 'call.ringing', 'c1', 1, 200, 'Delivered', 2, 'ok')"
    )
    await old.close()
    # two replicas of the new version start at once: both find the column missing, both add it
    store, other = await asyncio.gather(*(DeliveryStore.open(database_address) for _ in "12"))
    await store.log_attempt(replace(attempt(2.0), request="POST https://crm.test/…"))
    assert [a.request for a in await other.attempts()] == ["POST https://crm.test/…", ""]
    await store.close()
    await other.close()
