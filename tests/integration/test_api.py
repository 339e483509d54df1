"""The API end to end: every classic method after scenario steps and after commands, on the
in-memory bus and on the real RabbitMQ (the monitor and the API on connections of their own)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.api.main import running
from services.webhooks.classic import classic_payload
from shared.bus import Bus
from shared.call_state import CallState
from shared.events import BATCH_KEY, CallEnded, CallEvent, ExtensionForwarding, encode_batch, encode_event
from shared.memory_bus import InMemoryBus
from shared.rabbit_bus import RabbitBus
from shared.settings import Settings
from shared.topology import Topology
from tests.api_stack import API_SETTINGS, KEY, Stack, api_stack
from tests.broker import new_prefix, purge

# An inbound queue call answered by 102, an internal call 103 → 104, 105 unregisters, 106 goes Away.
SCENARIO = """
- {t: 0, do: incoming, call: A, from: "420777000111", did: PragueDID, to: "800"}
- {t: 1, do: ring, call: A, dn: ["101", "102"]}
- {t: 5, do: answer, call: A, dn: "102"}
- {t: 6, do: internal, call: I, from: "103", to: "104"}
- {t: 7, do: ring, call: I, dn: ["104"]}
- {t: 10, do: unregister, dn: "105"}
- {t: 12, do: set_forwarding, dn: "106", profile: Away}
- {t: 20, do: hangup, call: A, by: external}
- {t: 21, do: hangup, call: I, by: "103"}
"""


@pytest.fixture(params=["memory", pytest.param("rabbit", marks=pytest.mark.rabbitmq)])
async def buses(request: pytest.FixtureRequest) -> AsyncIterator[tuple[Bus, Bus]]:
    """(the API's bus, the monitor's bus): one in-memory bus, or two RabbitMQ connections."""
    if request.param == "memory":
        bus = InMemoryBus()
        yield bus, bus
        return
    amqp_url = request.getfixturevalue("amqp_url")
    names = Topology(new_prefix())
    try:
        async with (
            RabbitBus.connect(amqp_url, names=names, connection_name="test api") as api_bus,
            RabbitBus.connect(amqp_url, names=names, connection_name="test monitor") as monitor_bus,
        ):
            yield api_bus, monitor_bus
    finally:
        await purge(amqp_url, names.prefix)


@contextlib.asynccontextmanager
async def stack_on(buses: tuple[Bus, Bus], steps: str = "") -> AsyncIterator[Stack]:
    async with api_stack(buses[0], steps, monitor_bus=buses[1]) as stack:
        yield stack


async def answer(stack: Stack, method: str, **params: str) -> Any:
    response = await stack.get(method, **params)
    assert response.status_code == 200, response.text
    return response.json()


def numbers(listed: list[dict[str, Any]], key: str = "num") -> list[str]:
    return [item[key] for item in listed]


async def test_every_read_method_follows_a_scenario(buses: tuple[Bus, Bus]) -> None:
    async with stack_on(buses, SCENARIO) as stack:
        # the directory
        extensions = await answer(stack, "all.ext.get")
        assert extensions["count"] == 6 and extensions["extensions"][0] == {
            "num": "101",
            "name": "Alice Novak",
        }
        assert (await answer(stack, "all.queue.get"))["queues"] == [
            {"num": "800", "name": "Sales", "agents": ["101", "102", "105"]},
            {"num": "801", "name": "Support", "agents": ["103", "104"]},
        ]
        assert (await answer(stack, "all.group.get"))["groups"] == [
            {"num": "700", "name": "Front desk", "members": ["103", "104"]}
        ]
        assert (await answer(stack, "all.ivr.get")) == {
            "count": 1,
            "ivrs": [{"num": "600", "name": "Main menu"}],
        }
        lines = (await answer(stack, "all.line.get"))["lines"]
        assert (
            lines[0]["num"] == "10000" and {"number": "+420541000000", "name": "BrnoDID"} in lines[0]["dids"]
        )
        info = await answer(stack, "ext.info.get", num="103")
        assert info | {"queues": ["801"], "groups": ["700"]} == info and info["recording"] == "all"
        # t=0: the call waits in queue 800
        waiting = await stack.call_state(1, direction="FromExternal", state="Routing")
        assert [(p.number, p.type) for p in waiting.routing_to] == [("800", "queue")]
        assert await answer(stack, "pbx.calls.get") == {"result": 1}

        # t=1: the queue call rings 101 and 102
        await stack.clock.advance(1)
        ringing = await stack.until(lambda e: isinstance(e, CallState) and len(e.routing_to) == 2)
        assert isinstance(ringing, CallState) and (ringing.direction, ringing.state) == ("Inbound", "Routing")
        assert [p.number for p in ringing.routing_to] == ["101", "102"]
        assert await answer(stack, "pbx.calls.get") == {"result": 1}
        active = await answer(stack, "pbx.ac.get")
        assert active["count"] == 1
        call = active["AConnByCallID"][0]
        assert (call["callID"], call["direction"], call["did"]) == (1, "Inbound", "+420221000000")
        assert {(c["dnNum"], c["dnType"], c["externalParty"], c["status"]) for c in call["AConnList"]} == {
            ("10000", "line", "420777000111", "Ringing"),
            ("101", "extension", "420777000111", "Ringing"),
            ("102", "extension", "420777000111", "Ringing"),
        }
        info = (await answer(stack, "pbx.callsinfo.get"))["callsInfo"][0]
        assert (info["state"], info["answeredAt"], info["did"]) == ("Routing", None, "+420221000000")
        assert info["owner"] == {"dnNum": "420777000111", "name": "", "dnType": "external"}
        assert numbers(info["routingTo"], "dnNum") == ["101", "102"] and info["talkTo"] == []
        assert (await answer(stack, "ext.state.get", num="101"))["status"] == "Free"  # ringing is not busy
        assert (await answer(stack, "queue.isfree.get", num="800")) == {"num": "800", "free": True}

        # t=5: 102 answers
        await stack.clock.advance(4)
        await stack.call_state(1, state="Talking")
        info = (await answer(stack, "pbx.callsinfo.get"))["callsInfo"][0]
        assert info["talkTo"] == [{"dnNum": "102", "name": "Bohdan Kral", "dnType": "extension"}]
        assert info["answeredAt"].startswith("2024-03-01T09:00:05") and info["routingTo"] == []
        state = await answer(stack, "ext.state.get", num="102")
        assert state == {
            "num": "102",
            "registered": True,
            "status": "Busy",
            "fwdName": "Available",
            "qGlobalStatus": "LoggedIn",
            "qStatus": [{"num": "800", "status": "LoggedIn"}],
        }
        assert numbers((await answer(stack, "queue.talk.get", num="800"))["members"]) == ["102"]
        assert numbers((await answer(stack, "queue.free.get", num="800"))["members"]) == ["101", "105"]
        members = (await answer(stack, "queue.members.get", num="800"))["members"]
        assert [(m["num"], m["status"], m["loggedIn"]) for m in members] == [
            ("101", "Free", True),
            ("102", "Busy", True),
            ("105", "Free", True),
        ]

        # t=6..7: the internal call dials, then rings
        await stack.clock.advance(1)
        await stack.call_state(2, direction="FromInternal", state="Initiating")
        await stack.clock.advance(1)
        await stack.call_state(2, direction="Internal")
        internal = next(c for c in (await answer(stack, "pbx.ac.get"))["AConnByCallID"] if c["callID"] == 2)
        assert internal["direction"] == "Internal" and internal["did"] == ""
        group = (await answer(stack, "group.members.get", num="700"))["members"]
        assert [(m["num"], m["status"]) for m in group] == [("103", "Busy"), ("104", "Free")]
        assert numbers((await answer(stack, "group.free.get", num="700"))["members"]) == ["104"]

        # t=10, 12: 105 unregisters, 106 goes Away
        await stack.clock.advance(5)
        await stack.until(lambda e: isinstance(e, ExtensionForwarding))
        assert "105" not in numbers((await answer(stack, "all.registered.get"))["extensions"])
        assert (await answer(stack, "all.registered.get"))["count"] == 5
        assert numbers((await answer(stack, "queue.free.get", num="800"))["members"]) == ["101"]
        assert (await answer(stack, "ext.state.get", num="106"))["fwdName"] == "Away"

        # t=20, 21: both calls end
        await stack.clock.advance(9)
        await stack.call_state(2, ended=True)
        assert await answer(stack, "pbx.calls.get") == {"result": 0}
        assert await answer(stack, "pbx.callsinfo.get") == {"count": 0, "callsInfo": []}
        assert (await answer(stack, "ext.state.get", num="102"))["status"] == "Free"


async def test_commands_show_in_later_answers(buses: tuple[Bus, Bus]) -> None:
    async with stack_on(buses) as stack:
        assert await answer(stack, "ext.fwd.set", num="101", status="out of office") == {
            "result": "success",
            "reason": "",
            "callID": None,
        }
        await stack.until(lambda e: isinstance(e, ExtensionForwarding) and e.extension == "101")
        assert (await answer(stack, "ext.state.get", num="101"))["fwdName"] == "Out of office"

        await answer(stack, "ext.queueglobal.set", num="102", log="off")
        await answer(stack, "ext.queue.set", num="101", queue="800", log="off")
        await stack.until(
            lambda e: e.type == "extension.queue_login" and getattr(e, "extension", "") == "101"
        )
        assert (await answer(stack, "ext.state.get", num="102"))["qGlobalStatus"] == "LoggedOut"
        assert (await answer(stack, "ext.state.get", num="101"))["qStatus"] == [
            {"num": "800", "status": "LoggedOut"}
        ]
        assert numbers((await answer(stack, "queue.free.get", num="800"))["members"]) == ["105"]
        assert (await answer(stack, "queue.isfree.get", num="801"))["free"] is True

        await answer(stack, "ext.options.set", num="104", recording="all", external="off")
        await stack.until(lambda e: e.type == "extension.options")
        info = await answer(stack, "ext.info.get", num="104")
        assert (info["recording"], info["external"], info["enabled"]) == ("all", False, True)


async def test_unknown_names_are_404(buses: tuple[Bus, Bus]) -> None:
    async with stack_on(buses) as stack:
        for method in (
            "ext.info.get",
            "ext.state.get",
            "queue.members.get",
            "queue.free.get",
            "queue.talk.get",
        ):
            response = await stack.get(method, num="999")
            assert response.status_code == 404 and "999 does not exist" in response.json()["error"]
        for method in ("queue.isfree.get", "group.members.get", "group.free.get"):
            assert (await stack.get(method, num="999")).status_code == 404


async def test_makecall_rings_the_first_party_then_dials_the_second(buses: tuple[Bus, Bus]) -> None:
    async with stack_on(buses) as stack:
        made = await answer(stack, "makecall", first="101", second="420777123456")
        assert made["result"] == "success"
        number = made["callID"]
        ringing = await stack.call_state(number, direction="FromInternal", state="Initiating")
        assert [(leg.dn, leg.status) for leg in ringing.legs] == [("101", "Ringing")]
        assert (await answer(stack, "ext.state.get", num="101"))["status"] == "Free"

        await stack.clock.advance(2)  # 101 picks up: the PBX dials out
        dialling = await stack.until(  # the state after 101's own leg turned to Dialing (and busy)
            lambda e: (
                isinstance(e, CallState)
                and e.call_number == number
                and ("101", "Dialing") in [(leg.dn, leg.status) for leg in e.legs]
            )
        )
        assert isinstance(dialling, CallState) and (dialling.direction, dialling.state) == (
            "Outbound",
            "Initiating",
        )
        assert [p.number for p in dialling.routing_to] == ["420777123456"]
        assert (await answer(stack, "ext.state.get", num="101"))["status"] == "Busy"

        await stack.clock.advance(4)  # the far end answers
        await stack.call_state(number, state="Talking")
        info = (await answer(stack, "pbx.callsinfo.get"))["callsInfo"][0]
        assert info["owner"]["dnNum"] == "101" and info["talkTo"][0]["dnNum"] == "420777123456"

        await stack.clock.advance(30)  # 101 hangs up
        await stack.call_state(number, ended=True)  # published after the call's own events
        ended = await stack.until(lambda e: isinstance(e, CallEnded) and e.call_number == number)
        assert await answer(stack, "pbx.calls.get") == {"result": 0}
        webhooks = [classic_payload(e) for e in stack.recorder.events if isinstance(e, CallEvent)]
        # like any outgoing call (docs/classic-webhooks.md): answered, then ended Ok
        assert [(w["event"], w["user"], w["callerid"]) for w in webhooks if w] == [
            ("hangupoutgoing", "101", "420777123456"),
            ("outgoing", "101", "420777123456"),
        ]
        assert isinstance(ended, CallEnded) and ended.answered and ended.duration == 30.0


async def test_makecall_to_an_extension_rings_it_after_the_pickup(buses: tuple[Bus, Bus]) -> None:
    async with stack_on(buses) as stack:
        number = (await answer(stack, "makecall", first="101", second="103"))["callID"]
        await stack.clock.advance(2.5)
        state = await stack.call_state(number, direction="Internal", state="Initiating")
        assert [(leg.dn, leg.status) for leg in state.legs] == [("101", "Dialing"), ("103", "Ringing")]
        await stack.clock.advance(3.5)
        await stack.call_state(number, state="Talking")
        await stack.clock.advance(30)
        await stack.call_state(number, ended=True)


async def test_a_gap_in_the_sequence_loads_a_fresh_snapshot(buses: tuple[Bus, Bus]) -> None:
    async with stack_on(buses, SCENARIO) as stack:
        await stack.clock.advance(5)
        talking = await stack.call_state(1, state="Talking")
        assert stack.api.cache.snapshots == 1
        # a state event that skips numbers (as if some were lost): the cache must not trust itself
        skipped = talking.model_copy(update={"seq": talking.seq + 50, "state": "Unknown"})
        as_the_monitor_sends_it = encode_batch([encode_event(skipped)], skipped)
        await buses[1].publish_raw(BATCH_KEY, as_the_monitor_sends_it)
        await buses[1].flush()
        await asyncio.wait_for(stack.api.cache.wait_until(lambda cache: cache.snapshots == 2), 10)
        # the fresh snapshot is the monitor's own state, not the stray event
        assert (await answer(stack, "pbx.callsinfo.get"))["callsInfo"][0]["state"] == "Talking"
        await stack.clock.advance(1)  # and events go on being applied after it
        await stack.call_state(2, direction="FromInternal")
        assert [c["callID"] for c in (await answer(stack, "pbx.ac.get"))["AConnByCallID"]] == [1, 2]


async def test_without_a_monitor_reads_and_commands_are_503(buses: tuple[Bus, Bus]) -> None:
    async with (
        running(Settings(api=API_SETTINGS.model_copy(update={"command_timeout": 0.5})), buses[0]) as api,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=api.app), base_url="http://api") as client,
    ):
        for method in ("pbx.calls.get", "ext.state.get?num=101", "makecall?first=101&second=102"):
            response = await client.get(f"/{method}", headers={"X-API-Key": KEY})
            assert response.status_code == 503, method
            assert "monitor" in response.json()["error"]
        assert (await client.get("/readyz")).status_code == 503
        assert (await client.get("/healthz")).status_code == 200
