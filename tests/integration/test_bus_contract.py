"""One contract, two buses: InMemoryBus must route exactly as RabbitMQ does."""

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import pytest
from aio_pika import IncomingMessage
from yarl import URL

from shared.bus import Bus, Handler, RpcUnavailable
from shared.events import BATCH_KEY, EventBatch, Message, encode_batch, encode_event
from shared.http_server import free_port
from shared.logging import redact
from shared.memory_bus import InMemoryBus
from shared.rabbit_bus import RabbitBus
from shared.topology import Topology
from tests.broker import close_connection, dead_letters, messages_in, new_prefix, purge
from tests.factories import make_call_ended, make_call_ringing
from tests.fakes import Recorder
from tests.integration.conftest import private_rabbit_bus


@pytest.fixture(
    params=[
        "memory",
        pytest.param("classic", marks=pytest.mark.rabbitmq),
        pytest.param("quorum", marks=pytest.mark.rabbitmq),
    ]
)
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    """The in-memory bus, and RabbitMQ with each type of durable queue ([bus] queue_type)."""
    if request.param == "memory":
        yield InMemoryBus(raise_errors=False)
        return
    amqp_url = request.getfixturevalue("amqp_url")  # a sync fixture: fails loudly without a broker
    async with private_rabbit_bus(amqp_url, request.node.nodeid, request.param) as real:
        yield real


async def test_hash_binding_matches_zero_words(bus: Bus, recorder: Recorder) -> None:
    await bus.subscribe("contract", recorder, bindings=["call.ringing.#"])
    await bus.publish(make_call_ringing())
    await bus.flush()
    assert [e.type for e in await recorder.wait_for(1)] == ["call.ringing"]


async def test_star_matches_exactly_one_word(bus: Bus, recorder: Recorder) -> None:
    await bus.subscribe("contract", recorder, bindings=["*"])
    await bus.subscribe("contract", recorder, bindings=["call.*"])
    await bus.publish(make_call_ringing())
    await bus.publish(make_call_ended())
    await bus.flush()
    events = await recorder.wait_for(2)
    # two subscriptions, two consumers of one queue: each takes a message, in either order
    assert sorted(e.type for e in events) == ["call.ended", "call.ringing"]


async def test_unbound_routing_keys_are_not_delivered(bus: Bus, recorder: Recorder) -> None:
    await bus.subscribe("contract", recorder, bindings=["call.ended"])
    await bus.publish(make_call_ringing())
    marker = make_call_ended()
    await bus.publish(marker)
    await bus.flush()
    assert [e.event_id for e in await recorder.wait_for(1)] == [marker.event_id]


async def test_every_queue_gets_its_own_copy(bus: Bus) -> None:
    first, second = Recorder(), Recorder()
    await bus.subscribe("one", first, bindings=["call.#"])
    await bus.subscribe("two", second, bindings=["#"])
    event = make_call_ringing()
    await bus.publish(event)
    await bus.flush()
    assert (await first.wait_for(1))[0] == event
    assert (await second.wait_for(1))[0] == event


async def test_handlers_on_one_queue_compete(bus: Bus) -> None:
    everything = Recorder()
    seen_by: dict[str, list[object]] = {"first": [], "second": []}

    def handler(name: str) -> Handler:
        async def handle(event: Message) -> None:
            seen_by[name].append(event)
            await everything(event)

        return handle

    await bus.subscribe("shared", handler("first"), bindings=["call.#"])
    await bus.subscribe("shared", handler("second"), bindings=["call.#"])
    sent = [make_call_ringing() for _ in range(20)]
    for event in sent:
        await bus.publish(event)
    await bus.flush()
    received = await everything.wait_for(20)
    assert sorted(e.event_id for e in received) == sorted(
        e.event_id for e in sent
    )  # each once, not per handler


async def test_exclusive_queues_are_private_per_subscriber(bus: Bus) -> None:
    first, second = Recorder(), Recorder()
    name_one = await bus.subscribe("cache", first, bindings=["#"], exclusive=True)
    name_two = await bus.subscribe("cache", second, bindings=["#"], exclusive=True)
    assert name_one != name_two
    await bus.publish(make_call_ringing())
    await bus.flush()
    await first.wait_for(1)
    await second.wait_for(1)


async def test_order_within_a_queue_is_publish_order(bus: Bus, recorder: Recorder) -> None:
    await bus.subscribe("ordered", recorder, bindings=["call.#"])
    sent = [make_call_ringing(link=n) for n in range(2000)]
    for event in sent:  # not awaiting each confirm: the bus pipelines them
        await bus.publish(event)
    await bus.flush()
    received = await recorder.wait_for(2000, timeout=30)
    assert [e.event_id for e in received] == [e.event_id for e in sent]


async def test_batches_reach_only_the_queues_bound_to_them(bus: Bus) -> None:
    """The monitor's batches go by an exchange of their own: a queue bound to `#` gets each event
    once, never the batch that repeats it."""
    batches, everything = Recorder(), Recorder()
    await bus.subscribe("batches", batches, bindings=[BATCH_KEY, "call.ended"])
    await bus.subscribe("everything", everything, bindings=["#"])
    events = [make_call_ringing(seq=1), make_call_ringing(link=2, seq=2)]
    await bus.publish_raw(BATCH_KEY, encode_batch([encode_event(e) for e in events], events[-1]))
    marker = make_call_ended()
    await bus.publish(marker)
    await bus.flush()
    received = await batches.wait_for(2)
    assert isinstance(received[0], EventBatch) and received[0].events == tuple(events)
    assert [e.event_id for e in await everything.wait_for(1)] == [marker.event_id]
    assert received[1] == marker  # each exchange in publish order


async def test_events_round_trip_unchanged(bus: Bus, recorder: Recorder) -> None:
    await bus.subscribe("trip", recorder, bindings=["#"])
    event = make_call_ended(callback_requested=True, duration=12.345)
    await bus.publish(event)
    await bus.flush()
    assert (await recorder.wait_for(1))[0] == event


async def test_unparsable_body_is_dead_lettered(bus: Bus, recorder: Recorder) -> None:
    await bus.subscribe("strict", recorder, bindings=["call.#"])
    await bus.publish_raw("call.ringing", b'{"type": "call.ringing", "nonsense": true}')
    good = make_call_ringing()
    await bus.publish(good)
    await bus.flush()
    assert [e.event_id for e in await recorder.wait_for(1)] == [good.event_id]  # the queue goes on
    dead = await dead_letters(bus, 1)
    assert dead[0].routing_key == "call.ringing"
    assert b"nonsense" in dead[0].body
    assert dead[0].queue.endswith("strict")


async def test_failing_handler_dead_letters_and_carries_on(bus: Bus, recorder: Recorder) -> None:
    async def fussy(event: Message) -> None:
        if getattr(event, "link", 0) == 1:
            raise RuntimeError("cannot handle link 1")
        await recorder(event)

    await bus.subscribe("fussy", fussy, bindings=["call.#"])
    for link in (0, 1, 2):
        await bus.publish(make_call_ringing(link=link))
    await bus.flush()
    dead = await dead_letters(bus, 1)
    assert b'"link":1' in dead[0].body
    assert [getattr(e, "link", None) for e in await recorder.wait_for(2)] == [0, 2]


async def test_replaying_a_dead_letter_delivers_it(bus: Bus, recorder: Recorder) -> None:
    async def refuse(event: object) -> None:
        raise RuntimeError("not yet")

    await bus.subscribe("first", refuse, bindings=["call.ringing"])
    event = make_call_ringing(external_number=uuid4().hex)
    await bus.publish(event)
    await bus.flush()
    dead = await dead_letters(bus, 1)
    await bus.subscribe("second", recorder, bindings=["call.ringing"])
    await bus.publish_raw(dead[0].routing_key, dead[0].body)
    await bus.flush()
    assert (await recorder.wait_for(1))[-1] == event


async def test_a_call_gets_its_answer(bus: Bus) -> None:
    async def double(payload: dict[str, Any]) -> dict[str, Any]:
        return {"twice": payload["n"] * 2, "text": payload["text"]}

    await bus.serve("double", double)
    answers = await asyncio.gather(*(bus.call("double", {"n": n, "text": "žluťoučký"}, 5) for n in range(20)))
    assert [a["twice"] for a in answers] == [n * 2 for n in range(20)]
    assert answers[0]["text"] == "žluťoučký"


async def test_serving_a_method_again_replaces_its_handler(bus: Bus) -> None:
    async def first(payload: dict[str, Any]) -> dict[str, Any]:
        return {"by": "first"}

    async def second(payload: dict[str, Any]) -> dict[str, Any]:
        return {"by": "second"}

    await bus.serve("who", first)
    assert await bus.call("who", {}, 5) == {"by": "first"}
    await bus.serve("who", second)  # a monitor run after another on the same connection
    assert await bus.call("who", {}, 5) == {"by": "second"}


async def test_a_call_nobody_serves_is_unavailable_at_once(bus: Bus) -> None:
    async with asyncio.timeout(2):  # well before the call's own 30 s
        with pytest.raises(RpcUnavailable, match="nobody serves"):
            await bus.call("nobody-here", {}, 30)


async def test_a_silent_server_times_out(bus: Bus) -> None:
    forever = asyncio.Event()

    async def silent(payload: dict[str, Any]) -> dict[str, Any]:
        await forever.wait()
        return {}

    await bus.serve("silent", silent)
    with pytest.raises(RpcUnavailable, match="no answer within"):
        await bus.call("silent", {}, 0.3)
    forever.set()


async def test_a_failing_server_is_reported_without_its_details(bus: Bus) -> None:
    async def broken(payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("secret=hunter2")

    await bus.serve("broken", broken)
    with pytest.raises(RpcUnavailable, match="failed") as caught:
        await bus.call("broken", {}, 5)
    assert "hunter2" not in str(caught.value)


@pytest.mark.rabbitmq
async def test_a_dropped_connection_loses_no_event(amqp_url: str, recorder: Recorder) -> None:
    name = f"drop-{uuid4().hex[:8]}"
    async with private_rabbit_bus(amqp_url, name) as bus:
        await bus.subscribe("survivor", recorder, bindings=["call.#"])
        before = [make_call_ringing(link=n) for n in range(200)]
        after = [make_call_ringing(link=n) for n in range(200, 400)]
        for event in before:
            await bus.publish(event)
        await asyncio.to_thread(close_connection, name)  # with confirms possibly still in flight
        for event in after:
            await bus.publish(event)
        await bus.flush()  # raises if any event could not be sent again
        assert bus.reconnects >= 1
        wanted = {e.event_id for e in before + after}
        async with asyncio.timeout(30):
            while not wanted <= {e.event_id for e in recorder.events}:
                await recorder.wait_for(len(recorder.events) + 1)
        # at-least-once: duplicates may occur, but the stream still ends with the last event
        assert recorder.events[-1].event_id == after[-1].event_id


def first_held(recorder: Recorder) -> tuple[asyncio.Event, asyncio.Event, Handler]:
    """A handler that records each event, holding the first until `release` is set (`holding`
    says it has it)."""
    holding, release = asyncio.Event(), asyncio.Event()

    async def slow_first(event: Message) -> None:
        if not holding.is_set():
            holding.set()
            await release.wait()
        await recorder(event)

    return holding, release, slow_first


@pytest.mark.rabbitmq
async def test_a_consumer_survives_losing_its_channel_mid_message(amqp_url: str, recorder: Recorder) -> None:
    name = f"mid-{uuid4().hex[:8]}"
    holding, release, slow_first = first_held(recorder)  # the first waits while the connection goes

    async with private_rabbit_bus(amqp_url, name) as bus:
        await bus.subscribe("slow", slow_first, bindings=["call.#"])
        first, second = make_call_ringing(link=1), make_call_ringing(link=2)
        await bus.publish(first)
        await bus.flush()
        await holding.wait()
        await asyncio.to_thread(close_connection, name)
        release.set()  # its ack now fails: the channel it came on is gone
        await bus.publish(second)
        await bus.flush()
        async with asyncio.timeout(30):
            while second.event_id not in {e.event_id for e in recorder.events}:
                await recorder.wait_for(len(recorder.events) + 1)
    ids = [e.event_id for e in recorder.events]
    assert first.event_id in ids  # handled, and maybe again after the reconnect: at least once


@pytest.mark.rabbitmq
async def test_messages_prefetched_on_a_lost_channel_are_handled_once(
    amqp_url: str, recorder: Recorder
) -> None:
    """Messages the broker had handed over before the connection went are delivered again after
    the reconnect (perhaps to another replica): the consumer handles them there only."""
    name = f"prefetched-{uuid4().hex[:8]}"
    holding, release, slow_first = first_held(recorder)

    async with private_rabbit_bus(amqp_url, name) as bus:
        await bus.subscribe("prefetched", slow_first, bindings=["call.#"])
        events = [make_call_ringing(link=n) for n in range(1, 11)]
        for event in events:
            await bus.publish(event)
        await bus.flush()
        await holding.wait()  # the first in hand, the other nine prefetched behind it
        await asyncio.to_thread(close_connection, name)
        release.set()
        last = make_call_ended()  # behind whatever the broker delivers again
        await bus.publish(last)  # waits for the reconnect
        await bus.flush()
        async with asyncio.timeout(30):
            while last.event_id not in {e.event_id for e in recorder.events}:
                await recorder.wait_for(len(recorder.events) + 1)
    handled = [e.event_id for e in recorder.events]
    assert all(handled.count(e.event_id) == 1 for e in events[1:]), handled  # the first: at least once


@pytest.mark.rabbitmq
async def test_a_burst_is_acked_together_once_handled(
    amqp_url: str, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-at-a-time consumer acks what it handled in one frame once nothing more is in hand,
    and what it handled is all acked: nothing comes back when its connection closes."""
    acks: list[bool] = []  # each ack sent: whether it was `multiple`
    ack = IncomingMessage.ack

    async def counted(self: IncomingMessage, multiple: bool = False) -> None:
        acks.append(multiple)
        await ack(self, multiple=multiple)

    monkeypatch.setattr(IncomingMessage, "ack", counted)
    holding, release, slow_first = first_held(recorder)

    names = Topology(new_prefix())
    try:
        async with RabbitBus.connect(amqp_url, names=names, connection_name="acks") as bus:
            queue = await bus.subscribe("acks", slow_first, bindings=["call.#"])
            for n in range(20):
                await bus.publish(make_call_ringing(link=n))
            await bus.flush()
            await holding.wait()  # the first in hand, the others prefetched behind it
            assert acks == []
            release.set()
            await recorder.wait_for(20)
        assert messages_in(queue) == 0  # unacked messages would be back in the queue
    finally:
        await purge(amqp_url, names.prefix)
    assert 1 <= len(acks) <= 3 and all(acks), acks  # one ack a message before


@pytest.mark.rabbitmq
async def test_a_publisher_keeps_nothing_of_what_was_confirmed(rabbit_bus: RabbitBus) -> None:
    """Memory stays bounded however much is published: once confirmed, a message is let go."""

    async def traced_after_a_round() -> int:
        for n in range(2000):
            await rabbit_bus.publish(make_call_ringing(link=n))
        await rabbit_bus.flush()
        gc.collect()
        return tracemalloc.get_traced_memory()[0]

    tracemalloc.start()
    try:
        first = await traced_after_a_round()
        for _ in range(2):
            last = await traced_after_a_round()
    finally:
        tracemalloc.stop()
    assert last - first < 1_000_000  # when kept, it was ~1.6 MB a round


@pytest.mark.rabbitmq
async def test_with_several_urls_the_first_that_answers_is_used_then_the_next_in_order(amqp_url: str) -> None:
    """A cluster's nodes in `[bus] amqp_url`: one that does not answer is passed over; a lost
    connection goes on at the next URL (here the same broker under another host name)."""
    name = f"failover-{uuid4().hex[:8]}"
    broker = URL(amqp_url)
    urls = [
        str(broker.with_port(free_port())),  # nothing listens there
        str(broker.with_host("127.0.0.1")),
        str(broker.with_host("localhost")),
    ]
    names = Topology(new_prefix())
    try:
        async with RabbitBus.connect(",".join(urls), names=names, connection_name=name) as bus:
            assert bus.url == redact(urls[1])
            for expected in (urls[2], urls[1]):  # once round the list, the dead one passed over again
                before = bus.reconnects
                await asyncio.to_thread(close_connection, name)
                await bus.wait_reconnected(before)
                assert bus.url == redact(expected)
    finally:
        await purge(amqp_url, names.prefix)
