"""RabbitBus publish and consume rates next to bare aio-pika, in the same run.

    .venv/bin/python bench/bus.py [--messages 20000] [--amqp-url URL]

Persistent messages of ~300 bytes (a real `call.ringing` event), each routed to two durable
queues (as a call event goes to its webhooks shard and to the recordings ledger's batches):
- bare aio-pika, awaiting each publisher confirm before the next publish;
- bare aio-pika, up to 1,000 confirms in flight (a semaphore and gather);
- RabbitBus.publish (pipelined confirms, order kept), then flush();
- RabbitBus consuming the same messages (manual acks, prefetch 1,000, parse + handler).
"""

import argparse
import asyncio
import platform
import sys
import time
from pathlib import Path
from uuid import uuid4

import aio_pika

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.events import Message, encode_event
from shared.rabbit_bus import RabbitBus
from shared.topology import Topology
from tests.broker import purge
from tests.factories import make_call_ringing

BINDINGS = ("call.#",)  # the two queues' ("consumer" is consumed)


async def bare(url: str, bodies: list[bytes], window: int) -> float:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        name = f"bench.bare.{uuid4().hex[:8]}"
        exchange = await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC)
        queues = [await channel.declare_queue(f"{name}.{n}", durable=True) for n in (1, 2)]
        for queue in queues:
            await queue.bind(exchange, "#")
        gate = asyncio.Semaphore(window)

        async def one(body: bytes) -> None:
            async with gate:
                message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                await exchange.publish(message, routing_key="call.ringing")

        began = time.perf_counter()
        if window == 1:
            for body in bodies:
                await one(body)
        else:
            await asyncio.gather(*(one(body) for body in bodies))
        elapsed = time.perf_counter() - began
        for queue in queues:
            await queue.delete(if_empty=False)
        await exchange.delete()
    return len(bodies) / elapsed


async def ours(url: str, count: int) -> tuple[float, float]:
    events = [make_call_ringing(link=n) for n in range(count)]
    done = asyncio.Event()
    received = 0

    async def count_one(event: Message) -> None:
        nonlocal received
        received += 1
        if received == count:
            done.set()

    names = Topology(f"bench.bus.{uuid4().hex[:8]}")
    async with RabbitBus.connect(url, names=names, connection_name="bench") as bus:
        try:
            # durable queues declared first keep the events meanwhile, as the services' do
            for queue in ("consumer", "other"):
                await bus.declare(queue, bindings=BINDINGS, single_active=True)
            began = time.perf_counter()
            for event in events:
                await bus.publish(event)
            await bus.flush()
            publish = count / (time.perf_counter() - began)
            began = time.perf_counter()
            await bus.subscribe("consumer", count_one, bindings=BINDINGS, single_active=True)
            await done.wait()
            consume = count / (time.perf_counter() - began)
        finally:
            await purge(url, names.prefix)
    return publish, consume


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = parser.parse_args()
    body = encode_event(make_call_ringing())
    bodies = [body] * args.messages
    machine = f"{platform.node()}, Python {platform.python_version()}"
    print(f"machine: {machine}, {len(body)}-byte persistent messages")
    print(f"bare aio-pika, each confirm awaited:  {await bare(args.amqp_url, bodies[:3000], 1):8,.0f} msg/s")
    print(f"bare aio-pika, 1,000 confirms in flight: {await bare(args.amqp_url, bodies, 1000):8,.0f} msg/s")
    publish, consume = await ours(args.amqp_url, args.messages)
    print(f"RabbitBus.publish + flush:             {publish:8,.0f} msg/s")
    print(f"RabbitBus consume (parse, ack):        {consume:8,.0f} msg/s")


if __name__ == "__main__":
    asyncio.run(main())
