"""The API's key check on every method, the classic /webapi/{key}/ paths, the live event stream
(served by uvicorn, read as a stream), and OpenAPI documentation of every method."""

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from services.api.cache import StateCache
from services.api.http import create_app
from services.api.metrics import ApiMetrics
from services.api.stream import EventStream
from shared.http_server import free_port, serving
from shared.memory_bus import InMemoryBus
from tests.api_stack import API_SETTINGS, KEY, READ_ONLY_KEY, Stack, api_stack

ROUTES = create_app(
    StateCache(InMemoryBus(), 1), EventStream(10), InMemoryBus(), API_SETTINGS, ApiMetrics()
).openapi()["paths"]
OPERATIONS = {"/healthz", "/readyz", "/metrics"}
COMMANDS = {"/makecall", "/ext.fwd.set", "/ext.queueglobal.set", "/ext.queue.set", "/ext.options.set"}
METHODS = sorted(path for path in ROUTES if path not in OPERATIONS)
PARAMS = {  # enough for each method to succeed with the right key
    "/ext.info.get": {"num": "101"},
    "/ext.state.get": {"num": "101"},
    "/queue.members.get": {"num": "800"},
    "/queue.free.get": {"num": "800"},
    "/queue.talk.get": {"num": "800"},
    "/queue.isfree.get": {"num": "800"},
    "/group.members.get": {"num": "700"},
    "/group.free.get": {"num": "700"},
    "/makecall": {"first": "101", "second": "102"},
    "/ext.fwd.set": {"num": "101", "status": "Away"},
    "/ext.queueglobal.set": {"num": "101", "log": "off"},
    "/ext.queue.set": {"num": "101", "queue": "800", "log": "off"},
    "/ext.options.set": {"num": "101", "recording": "external"},
}


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    async with api_stack(InMemoryBus()) as running:
        yield running


def test_the_method_list_is_the_classic_one() -> None:
    assert (
        sorted(
            [
                "/pbx.calls.get",
                "/pbx.ac.get",
                "/pbx.callsinfo.get",
                "/all.ext.get",
                "/all.registered.get",
                "/all.group.get",
                "/all.queue.get",
                "/all.ivr.get",
                "/all.line.get",
                "/ext.info.get",
                "/ext.state.get",
                "/queue.members.get",
                "/queue.free.get",
                "/queue.talk.get",
                "/queue.isfree.get",
                "/group.members.get",
                "/group.free.get",
                *COMMANDS,
                "/events",
            ]
        )
        == METHODS
    )


@pytest.mark.parametrize("path", [p for p in METHODS if p != "/events"])
async def test_every_method_checks_the_key(stack: Stack, path: str) -> None:
    params = PARAMS.get(path, {})
    missing = await stack.client.get(path, params=params)
    assert missing.status_code == 401 and "API key is needed" in missing.json()["error"]
    assert missing.headers["www-authenticate"] == "Bearer"
    for wrong in ({"key": KEY[:-1]}, {"key": KEY + "x"}, {"key": "x" * len(KEY)}, {"key": "é" * 20}):
        answer = await stack.client.get(path, params=params | wrong)
        assert answer.status_code == 401 and answer.json() == {"error": "wrong API key"}
        assert KEY not in answer.text
    read_only = await stack.client.get(path, params=params | {"key": READ_ONLY_KEY})
    if path in COMMANDS:
        assert read_only.status_code == 403 and "only read" in read_only.json()["error"]
    else:
        assert read_only.status_code == 200, read_only.text
    for latin in ({"X-API-Key": "é" * 20}, {"Authorization": "Bearer \udcff"}):  # undecodable bytes
        raw = {name: value.encode("utf-8", "surrogateescape") for name, value in latin.items()}
        refused = await stack.client.get(path, params=params, headers=raw)
        assert refused.status_code == 401, refused.text
    for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
        allowed = await stack.client.get(path, params=params, headers=headers)
        assert allowed.status_code == 200, (headers, allowed.text)


async def test_the_event_stream_checks_the_key(stack: Stack) -> None:
    assert (await stack.client.get("/events")).status_code == 401
    assert (await stack.client.get("/events", params={"key": "nope"})).status_code == 401


async def test_the_classic_path_carries_the_key(stack: Stack) -> None:
    answer = await stack.client.get(f"/webapi/{KEY}/ext.state.get", params={"num": "101"})
    assert answer.status_code == 200 and answer.json()["num"] == "101"
    assert (await stack.client.get("/webapi/wrong-key-wrong-key/pbx.calls.get")).status_code == 401
    assert (
        await stack.client.get(f"/webapi/{READ_ONLY_KEY}/makecall?first=101&second=102")
    ).status_code == 403


async def test_every_method_is_documented(stack: Stack) -> None:
    schema = (await stack.client.get("/openapi.json")).json()
    assert (await stack.client.get("/docs")).status_code == 200
    for path in METHODS:
        operation = schema["paths"][path]["get"]
        assert operation.get("description") or operation.get("summary"), path
        for parameter in operation.get("parameters", []):
            if parameter["in"] == "query":
                assert (
                    parameter.get("description")
                    or parameter["schema"].get("enum")
                    or "anyOf" in parameter["schema"]
                ), (path, parameter["name"])
        if path != "/events":
            ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
            assert "$ref" in ok, path  # a documented answer model, not a bare object
        assert {"401", "422"} <= set(operation["responses"]), path


async def test_metrics_count_requests_per_method(stack: Stack) -> None:
    await stack.get("ext.state.get", num="101")
    await stack.get("ext.state.get", key=None, num="101")
    metrics = (await stack.client.get("/metrics")).text
    assert 'callbridge_api_requests_total{method="/ext.state.get",status="200"} 1.0' in metrics
    assert 'callbridge_api_requests_total{method="/ext.state.get",status="401"} 1.0' in metrics
    assert "callbridge_api_cache_seq" in metrics and KEY not in metrics


async def test_the_live_stream_sends_events_as_they_happen() -> None:
    port = free_port()
    async with api_stack(InMemoryBus()) as stack, serving(stack.api.app, "127.0.0.1", port):
        url = f"http://127.0.0.1:{port}"
        async with (
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            client.stream("GET", "/events", params={"key": KEY, "types": "extension.*"}) as stream,
        ):
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await anext(lines) == ": callbridge events"  # connected: now cause something
            sent = await client.get("/ext.fwd.set", params={"key": KEY, "num": "103", "status": "Away"})
            assert sent.json()["result"] == "success"
            received: dict[str, str] = {}
            async with asyncio.timeout(10):
                async for line in lines:
                    if not line and received:  # the blank line that ends an event
                        break
                    if line and not line.startswith(":"):
                        field, _, value = line.partition(": ")
                        received[field] = value
        assert received["event"] == "extension.forwarding"
        data = json.loads(received["data"])
        assert (data["extension"], data["profile"]) == ("103", "Away") and data["event_id"] == received["id"]


async def test_a_listener_that_falls_behind_is_cut_off() -> None:
    from tests.factories import make_call_ringing

    stream = EventStream(buffer=10)
    async with stream.listen(["call.#"]) as listener:
        for link in range(20):
            await stream.handle(make_call_ringing(link=link))
        items = [listener.inbox.get_nowait() for _ in range(listener.inbox.qsize())]
    assert len(items) == 11 and items[-1] is None and listener.overflowed
    assert stream.listeners == 0
