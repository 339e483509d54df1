"""The webhooks service's HTTP routes: health, metrics, attempt log, dead letters and replay."""

from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from services.webhooks import admin
from services.webhooks.admin import replay
from services.webhooks.http import create_app
from services.webhooks.jobs import Job, jobs_for
from services.webhooks.metrics import WebhookMetrics
from services.webhooks.store import Attempt, DeliveryStore
from shared.clock import SystemClock
from shared.events import encode_event
from shared.keys import Keys
from shared.settings import EndpointSettings
from tests.factories import make_call_ringing
from tests.unit.webhooks.test_dispatcher import RecordingQueue

FULL, READER = "a-full-key-for-the-admin", "a-read-only-key-for-the-log"


async def test_routes(tmp_path: Path) -> None:
    store = await DeliveryStore.open(tmp_path / "w.db")
    queue = RecordingQueue()
    metrics = WebhookMetrics()
    metrics.attempted("crm", "Delivered", 0.012)
    event = make_call_ringing()
    [job] = jobs_for(event, encode_event(event).decode(), {"crm": EndpointSettings(url="http://x/")})
    now = SystemClock().now().timestamp()
    await store.bury(now, "crm", job.model_dump_json(), job.event_type, job.chain, "gave up")
    await store.log_attempt(
        Attempt(now, "crm", job.event_id, job.event_type, job.chain, 1, 500, "Failed", 3.2, "boom", "GET x")
    )
    await store.disable(now, "crm", "410")
    keys = Keys((SecretStr(FULL),), (SecretStr(READER),))
    app = create_app(store, queue, metrics, SystemClock(), keys, ready=lambda: False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://webhooks"
    ) as client:
        await check_keys(client)
        client.headers["X-API-Key"] = FULL
        await check_routes(client, store, queue, job)


async def check_keys(client: httpx.AsyncClient) -> None:
    """The admin routes take the API's keys: any key reads, a full one replays."""
    for path in ("/attempts", "/dead"):
        assert (await client.get(path)).status_code == 401
        assert (await client.get(path, headers={"X-API-Key": "wrong-key-wrong-key"})).status_code == 401
        assert (await client.get(path, headers={"X-API-Key": READER})).status_code == 200
    assert (await client.post("/dead/replay")).status_code == 401
    assert (await client.post("/dead/replay", headers={"X-API-Key": READER})).status_code == 403


async def check_routes(
    client: httpx.AsyncClient, store: DeliveryStore, queue: RecordingQueue, job: Job
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "alive"}
    assert (await client.get("/readyz")).status_code == 503
    assert (
        'callbridge_webhook_attempts_total{endpoint="crm",outcome="Delivered"} 1.0'
        in (await client.get("/metrics")).text
    )
    [attempt] = (await client.get("/attempts", params={"endpoint": "crm", "since": "1h"})).json()
    assert (attempt["status"], attempt["outcome"], attempt["response"]) == (500, "Failed", "boom")
    assert attempt["request"] == "GET x"  # what was sent, for the dashboard's detail
    [dead] = (await client.get("/dead")).json()
    assert (dead["endpoint"], dead["chain"], dead["reason"]) == ("crm", job.chain, "gave up")
    assert (await client.get("/dead", params={"since": "next tuesday"})).status_code == 422

    listed = await store.dead()  # what a second replay running at once (a double click) read
    assert (await client.post("/dead/replay", params={"endpoint": "crm"})).json() == {"replayed": 1}
    assert await replay(store, queue, listed, SystemClock()) == 0  # it sends nothing again
    assert [(j.job_id, j.attempt) for j in queue.submitted] == [(job.job_id, 0)]
    assert (await client.get("/dead")).json() == []
    assert await store.disabled() == {}  # replaying re-enables the endpoint


async def test_endpoints_health_filters_one_replay_and_enable(tmp_path: Path) -> None:
    """The dashboard's admin routes: each endpoint's success rate and last error, the attempt
    log by chain and outcome, one dead letter replayed by id, a disabled endpoint enabled again
    (a full key only)."""
    store = await DeliveryStore.open(tmp_path / "w.db")
    queue = RecordingQueue()
    now = SystemClock().now().timestamp()
    for status, outcome, answer in ((500, "Failed", "boom"), (200, "Delivered", "ok")):
        await store.log_attempt(
            Attempt(now, "crm", "e1", "call.ringing", "c-1", 1, status, outcome, 2.0, answer)
        )
    await store.log_attempt(
        Attempt(now, "chat", "e2", "call.ringing", "c-2", 1, None, "Failed", 9.0, "refused")
    )
    for chain in ("c-1", "c-2"):
        await store.bury(now, "crm", _job(chain).model_dump_json(), "call.ringing", chain, "gave up")
    await store.disable(now, "gone", "410")
    keys = Keys((SecretStr(FULL),), (SecretStr(READER),))
    app = create_app(store, queue, WebhookMetrics(), SystemClock(), keys)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://w", headers={"X-API-Key": READER}
    ) as client:
        health = {e["endpoint"]: e for e in (await client.get("/endpoints")).json()}
        assert (health["crm"]["success_rate"], health["crm"]["last_error"]) == (0.5, "500: boom")
        assert (health["chat"]["last_error"], health["chat"]["disabled"]) == ("no answer: refused", False)
        assert (health["gone"]["disabled"], health["gone"]["disabled_reason"]) == (True, "410")
        failed = (await client.get("/attempts", params={"chain": "c-1", "outcome": "Failed"})).json()
        assert [(a["chain"], a["response"]) for a in failed] == [("c-1", "boom")] and failed[0]["id"] > 0
        assert (await client.post("/endpoints/gone/enable")).status_code == 403
        client.headers["X-API-Key"] = FULL
        [first, _] = (await client.get("/dead")).json()
        assert (await client.post("/dead/replay", params={"id": first["id"]})).json() == {"replayed": 1}
        assert [d["chain"] for d in (await client.get("/dead")).json()] == ["c-2"]
        assert (await client.post("/endpoints/gone/enable")).json() == {"enabled": "gone"}
        assert (await client.post("/endpoints/gone/enable")).status_code == 404
    assert await store.disabled() == {}
    await store.close()


def _job(chain: str) -> Job:
    event = make_call_ringing(chain_id=chain)
    [job] = jobs_for(event, encode_event(event).decode(), {"crm": EndpointSettings(url="http://x/")})
    return job


async def test_a_replay_by_filter_goes_a_batch_at_a_time_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(admin, "REPLAY_BATCH", 2)
    store, queue = await DeliveryStore.open(tmp_path / "w.db"), RecordingQueue()
    endpoints = {"crm": EndpointSettings(url="http://x/")}
    jobs = []
    for n in range(5):
        event = make_call_ringing(link=n)
        [job] = jobs_for(event, encode_event(event).decode(), endpoints)
        await store.bury(float(n), "crm", job.model_dump_json(), job.event_type, job.chain, "gave up")
        jobs.append(job)
    assert await admin.replay_selected(store, queue, SystemClock(), endpoint="crm", since=0.0) == 5
    assert [j.event_id for j in queue.submitted] == [j.event_id for j in jobs]
    assert await store.dead() == []
    await store.close()
