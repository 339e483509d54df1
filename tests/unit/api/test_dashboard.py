"""The dashboard's JSON (`/ui/api/…`): rights, the live view, recent chains, the pages served
without a key, and the webhooks admin routes reached through the api with the caller's key."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from services.api.chains import EVENTS_KEPT, RecentChains
from services.api.live import QueueDay
from services.webhooks.http import create_app as webhooks_app
from services.webhooks.metrics import WebhookMetrics
from services.webhooks.store import Attempt, DeliveryStore
from shared.call_state import CallParty, CallState
from shared.clock import SystemClock
from shared.http_server import free_port, serving
from shared.keys import Keys
from shared.memory_bus import InMemoryBus
from tests.api_stack import API_SETTINGS, KEY, READ_ONLY_KEY, api_stack
from tests.factories import make_call_ended, make_call_ringing
from tests.fakes import play
from tests.unit.webhooks.test_dispatcher import RecordingQueue

SCENARIO = """
- {t: 1, do: incoming, call: A, from: "420777000111", did: PragueDID, to: "800"}
- {t: 2, do: ring, call: A, dn: ["101", "102"]}
- {t: 6, do: answer, call: A, dn: "102"}
"""


async def test_rights_live_view_and_pages() -> None:
    async with api_stack(InMemoryBus(), SCENARIO) as stack:
        client = stack.client
        assert (await client.get("/ui/")).status_code == 200  # the page itself needs no key
        assert "text/javascript" in (await client.get("/ui/app.js")).headers["content-type"]
        assert (await client.get("/ui/api/whoami")).status_code == 401
        whoami = {
            k: (await client.get("/ui/api/whoami", headers={"X-API-Key": k})).json()
            for k in (KEY, READ_ONLY_KEY)
        }
        assert whoami == {KEY: {"rights": "full"}, READ_ONLY_KEY: {"rights": "read"}}
        await stack.clock.advance(1)  # the api counts a queue's calls from the events it sees
        await stack.call_state(1, state="Routing")
        live = (await client.get("/ui/api/live", headers={"X-API-Key": READ_ONLY_KEY})).json()
        [call] = live["calls"]
        assert (call["caller"], call["state"]) == ("420777000111", "Routing")
        assert call["ringing"] == ["Sales (800)"]
        sales = next(q for q in live["queues"] if q["number"] == "800")
        assert (sales["waiting"], sales["free"], sales["busy"], sales["logged_out"]) == (1, 3, 0, 0)
        assert {e["number"]: e["profile"] for e in live["extensions"]}["101"] == "Available"
        await stack.clock.advance(5)
        await stack.call_state(1, state="Talking")
        live = (await client.get("/ui/api/live", headers={"X-API-Key": KEY})).json()
        assert live["calls"][0]["talking"] == ["Bohdan Kral (102)"]
        sales = next(q for q in live["queues"] if q["number"] == "800")
        assert (sales["answered"], sales["missed"], sales["service_level"], sales["busy"]) == (1, 0, 1.0, 1)
        chains = (
            await client.get("/ui/api/chains", params={"caller": "777"}, headers={"X-API-Key": KEY})
        ).json()
        assert [c["caller"] for c in chains] == ["420777000111"] and chains[0]["answered"]


def test_the_window_keeps_the_latest_chains_and_finds_them() -> None:
    window = RecentChains(size=2)
    for n in (1, 2, 3):
        window.handle(make_call_ringing(chain_id=f"c_{n}", call_number=n, extension=f"10{n}"))
    window.handle(make_call_ended(chain_id="c_3", call_number=3, extension="103", chain_ended=True))
    assert [c.chain_id for c in window.search()] == ["c_3", "c_2"]  # c_1 fell out
    assert [c.chain_id for c in window.search(extension="102")] == ["c_2"]
    [ended] = window.search(chain_id="c_3")
    assert ended.ended_at is not None and [e["type"] for e in ended.events] == ["call.ringing", "call.ended"]
    later = ended.started_at + timedelta(hours=25)  # a day on: the window lets the old chains go
    window.handle(make_call_ringing(chain_id="c_4", call_number=4, extension="104", occurred_at=later))
    assert [c.chain_id for c in window.search()] == ["c_4"]
    for n in range(250):  # a chain that rang and rang: its start and its latest events are kept
        window.handle(
            make_call_ringing(chain_id="c_4", call_number=4, extension=f"2{n:02d}", occurred_at=later)
        )
    [busy] = window.search()
    assert len(busy.events) == EVENTS_KEPT and busy.events[0]["extension"] == "104"
    day = QueueDay()
    day.handle(make_call_ringing())  # not a pbx.call: ignored
    assert not day.tallies


def test_a_call_answered_before_its_wait_was_published_counts_for_its_queue() -> None:
    """Queue 800 rings its agents at once and one answers: the monitor gathered the states, the
    api never saw the call wait in the queue, and still counts it there."""
    events = play(SCENARIO, gathered=True)
    states = [e for e in events if isinstance(e, CallState)]
    assert len(states) == 1 and not any(p.type == "queue" for p in states[0].routing_to)
    day = QueueDay()
    for state in states:
        day.handle(state)
    assert (day.tallies["800"].answered, day.tallies["800"].in_time) == (1, 1)


async def test_webhooks_admin_routes_through_the_api_with_the_callers_key(tmp_path: Path) -> None:
    store = await DeliveryStore.open(tmp_path / "w.db")
    now = SystemClock().now().timestamp()
    await store.log_attempt(Attempt(now, "crm", "e1", "call.ringing", "c-1", 1, 500, "Failed", 2.0, "boom"))
    await store.disable(now, "crm", "410")
    keys = Keys((SecretStr(KEY),), (SecretStr(READ_ONLY_KEY),))
    admin = webhooks_app(store, RecordingQueue(), WebhookMetrics(), SystemClock(), keys)
    port = free_port()
    settings = API_SETTINGS.model_copy(update={"webhooks_admin_url": f"http://127.0.0.1:{port}"})
    async with serving(admin, "127.0.0.1", port), api_stack(InMemoryBus(), settings=settings) as stack:
        reader = {"X-API-Key": READ_ONLY_KEY}
        page = await stack.client.get("/ui/")  # no key: the page holds no data
        assert page.status_code == 200 and "frame-ancestors 'none'" in page.headers["content-security-policy"]
        attempts = await stack.client.get(
            "/ui/api/webhooks/attempts", params={"chain": "c-1"}, headers=reader
        )
        assert [a["response"] for a in attempts.json()] == ["boom"]
        [crm] = (await stack.client.get("/ui/api/webhooks/endpoints", headers=reader)).json()
        assert (crm["disabled"], crm["last_error"]) == (True, "500: boom")
        assert (
            await stack.client.post("/ui/api/webhooks/endpoints/crm/enable", headers=reader)
        ).status_code == 403
        assert (await stack.client.post("/ui/api/webhooks/dead/replay")).status_code == 401
        enabled = await stack.client.post("/ui/api/webhooks/endpoints/crm/enable", headers={"X-API-Key": KEY})
        assert enabled.json() == {"enabled": "crm"}
        odd = await stack.client.post("/ui/api/webhooks/endpoints/%2E%2E/enable", headers={"X-API-Key": KEY})
        assert odd.status_code == 422  # never a POST to another path of the webhooks service
        bad = await stack.client.get("/ui/api/webhooks/dead", params={"since": "soon"}, headers=reader)
        assert bad.status_code == 422 and "error" in bad.json()  # its error in the api's form
    other_keys = Keys((SecretStr("a-key-the-api-does-not-have"),), ())
    stranger = webhooks_app(store, RecordingQueue(), WebhookMetrics(), SystemClock(), other_keys)
    async with serving(stranger, "127.0.0.1", port), api_stack(InMemoryBus(), settings=settings) as stack:
        refused = await stack.client.get("/ui/api/webhooks/dead", headers={"X-API-Key": KEY})
        assert refused.status_code == 502  # not a 401: the page would log the user out
    await store.close()
    async with api_stack(InMemoryBus(), settings=settings) as stack:  # the webhooks service is away
        away = await stack.client.get("/ui/api/webhooks/dead", headers={"X-API-Key": KEY})
        assert (away.status_code, away.json()) == (502, {"error": "the webhooks service did not answer"})


def test_a_queue_day_begins_at_the_pbx_s_midnight() -> None:
    """Answered and missed of the day, in the PBX's days: 23:30 UTC is already tomorrow in Prague."""
    prague = ZoneInfo("Europe/Prague")
    day = QueueDay(prague)
    late = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)  # 00:30 on the 6th in Prague
    queue = (CallParty(number="800", type="queue"),)
    owner = CallParty(number="420777000111", type="external")
    common = {
        "source": "m/1",
        "call_number": 7,
        "direction": "FromExternal",
        "owner": owner,
        "started_at": late,
    }
    day.handle(CallState(occurred_at=late, seq=1, state="Routing", routing_to=queue, **common))
    answered = late + timedelta(seconds=5)
    day.handle(CallState(occurred_at=answered, seq=2, state="Talking", answered_at=answered, **common))
    assert day.day == date(2026, 12, 6)
    assert (day.tallies["800"].answered, day.tallies["800"].in_time) == (1, 1)
