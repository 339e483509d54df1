"""RabbitBus: the bus on RabbitMQ through aio-pika.

- One robust connection per process (named after the service), one publishing channel with
  publisher confirms, one consuming channel with a prefetch window.
- A durable topic exchange; persistent JSON messages whose routing key is the event type.
- Publishing keeps up to `confirm_window` confirms in flight instead of awaiting each one, in
  order, and resends what a lost connection interrupted (`rabbit_publisher.py`).
- Consumers handle one queue's messages one at a time, in order, and ack each after its
  handler returns. A body that does not parse, or whose handler raises, is rejected without
  requeue and lands in the dead-letter exchange (`callbridge.dead`) and its durable queue.
- An event the webhooks service wants also goes straight to its ordered shard queue: a second
  routing key, `shard.<n>`, in the CC header (`shared/topology.py`).
- The services' durable queues (the webhooks shards, recordings) are declared by everyone who
  connects, so events published before a consumer ever started are kept, not dropped.
"""

import asyncio
import collections
import contextlib
import logging
import math
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar
from uuid import uuid4

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.patterns import JsonRPC
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pydantic import ValidationError

from . import topology
from .bus import DeadLetter, Handler, PublishError, RpcHandler, RpcUnavailable
from .events import Event, encode_event, ordering_scope, parse_event
from .logging import redact_url
from .rabbit_publisher import ConfirmedPublisher, Reconnects, persistent
from .settings import BusSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")
WAITING_EVERY = 15.0  # seconds between two looks at how many messages wait in a consumed queue


class RabbitBus:
    def __init__(
        self,
        connection: AbstractRobustConnection,
        publish_channel: AbstractChannel,
        consume_channel: AbstractChannel,
        names: topology.Topology,
        confirm_window: int,
    ) -> None:
        self._connection = connection
        self._publish_channel = publish_channel
        self._consume_channel = consume_channel
        self._names = names
        self._confirm_window = confirm_window
        self._reconnects = Reconnects(connection)
        self._publisher = ConfirmedPublisher(self._reconnects, confirm_window)
        self._consumers: set[asyncio.Task[None]] = set()
        self._exchange: AbstractExchange | None = None
        self._dead_queue: AbstractQueue | None = None
        self._rpc: JsonRPC | None = None
        self._rpc_lock = asyncio.Lock()
        self._served: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {}
        self._waiting: dict[str, int] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls,
        url: str,
        *,
        names: topology.Topology | None = None,
        connection_name: str = "callbridge",
        prefetch: int = 1000,
        confirm_window: int = 1000,
    ) -> AsyncIterator["RabbitBus"]:
        names = names or topology.Topology()
        try:
            connection = await aio_pika.connect_robust(
                url, client_properties={"connection_name": connection_name}
            )
        except (OSError, aiormq.exceptions.AMQPError) as error:
            raise ConnectionError(f"RabbitMQ not reachable at {redact_url(url)}: {error}") from None
        except ValueError:  # a URL the settings let through: never show it, it holds the password
            raise ConnectionError("RabbitMQ: [bus] amqp_url is not a valid URL") from None
        async with connection:
            publish_channel = await connection.channel(publisher_confirms=True)
            consume_channel = await connection.channel(publisher_confirms=False)
            await consume_channel.set_qos(prefetch_count=prefetch)
            bus = cls(connection, publish_channel, consume_channel, names, confirm_window)
            await bus._declare()
            logger.info(
                "bus connected to %s as %s (exchange %s)",
                redact_url(url),
                connection_name,
                names.events_exchange,
            )
            try:
                yield bus
            finally:
                await bus._close()

    @property
    def connected(self) -> bool:
        return self._connection.connected.is_set()

    @classmethod
    def configured(
        cls, settings: BusSettings, connection_name: str
    ) -> contextlib.AbstractAsyncContextManager["RabbitBus"]:
        """`connect` with the `[bus]` section of the configuration; the connection's name (in
        RabbitMQ's management UI and `rabbitmqctl list_connections`) says which process it is."""
        return cls.connect(
            settings.amqp_url,
            names=topology.Topology(settings.exchange),
            connection_name=f"callbridge {connection_name} on {socket.gethostname()} pid {os.getpid()}",
            prefetch=settings.prefetch,
            confirm_window=settings.confirm_window,
        )

    @property
    def reconnects(self) -> int:
        return self._reconnects.count

    async def wait_reconnected(self, after: int) -> None:
        """Return once the connection has been re-established more than `after` times."""
        await self._reconnects.wait_beyond(after)

    async def _declare(self) -> None:
        self._exchange = await self._publish_channel.declare_exchange(
            self._names.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
        )
        dead = await self._publish_channel.declare_exchange(
            self._names.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        self._dead_queue = await self._publish_channel.declare_queue(self._names.dead_queue, durable=True)
        await self._dead_queue.bind(dead)
        for role, (bindings, _) in topology.SERVICE_QUEUES.items():
            await self._declare_queue(self._publish_channel, role, bindings, exclusive=False)
        await self._ensure_shards()

    async def _ensure_shards(self) -> None:
        """Declare the webhooks shard queues unless they are there (one look, not 200 round trips
        at every connection): the shards exchange is declared after every queue and its events
        binding, so its presence says they are complete. The webhooks service itself declares
        them in full at every start (`declare_shards`)."""
        probe = await self._connection.channel()
        try:
            await probe.declare_exchange(self._names.shards_exchange, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            await self.declare_shards(self._publish_channel)
            return
        await probe.close()

    async def declare_shards(self, channel: AbstractChannel) -> list[AbstractQueue]:
        """The webhooks shard queues, bound to the events exchange (`shard.<n>`, in publishers'
        CC header) and to the shards exchange (header `shard` = n: the service's own jobs)."""
        names = self._names
        queues = []
        for shard in range(names.shards):
            queue = await channel.declare_queue(
                names.shard_queue(shard),
                durable=True,
                arguments={"x-single-active-consumer": True, "x-dead-letter-exchange": names.dead_exchange},
            )
            await queue.bind(names.events_exchange, routing_key=topology.shard_key(shard))
            queues.append(queue)
        jobs = await channel.declare_exchange(
            names.shards_exchange, aio_pika.ExchangeType.HEADERS, durable=True
        )
        for shard, queue in enumerate(queues):
            await queue.bind(jobs, arguments={"x-match": "all", "shard": str(shard)})
        return queues

    async def _declare_queue(
        self, channel: AbstractChannel, role: str, bindings: Sequence[str], *, exclusive: bool
    ) -> AbstractQueue:
        """A role's queue (`recordings` → `callbridge.recordings`), dead-lettering to the DLX; an
        exclusive one gets a unique name, a service queue the arguments of SERVICE_QUEUES."""
        extra = {} if exclusive else topology.SERVICE_QUEUES.get(role, ((), {}))[1]
        queue = await channel.declare_queue(
            self._names.queue(f"{role}.{uuid4().hex[:12]}" if exclusive else role),
            durable=not exclusive,
            exclusive=exclusive,
            auto_delete=exclusive,
            arguments={"x-dead-letter-exchange": self._names.dead_exchange, **extra},
        )
        for binding in bindings:
            await queue.bind(self._names.events_exchange, routing_key=binding)
        return queue

    # --- publishing ----------------------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        """Send `event` with its type as routing key; an event the webhooks service wants also
        goes straight to its shard queue (a second routing key in the CC header)."""
        assert self._exchange is not None
        headers = None
        if topology.wanted_by_webhooks(event.type):
            headers = {"CC": [topology.shard_key(self._names.shard_of(ordering_scope(event)))]}
        message = persistent(
            encode_event(event), message_id=str(event.event_id), kind=event.type, headers=headers
        )
        await self._publisher.send(self._exchange, event.type, message)

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        assert self._exchange is not None
        await self._publisher.send(
            self._exchange, routing_key, persistent(body, message_id=uuid4().hex, kind=routing_key)
        )

    async def flush(self) -> None:
        await self._publisher.flush()

    async def open_channel(self, *, prefetch: int | None = None) -> AbstractChannel:
        """A further channel on this connection, for a service's own queues (webhooks jobs)."""
        channel = await self._connection.channel(publisher_confirms=True)
        if prefetch is not None:
            await channel.set_qos(prefetch_count=prefetch)
        return channel

    def publisher(self) -> ConfirmedPublisher:
        """A pipelined confirmed publisher sharing this bus's reconnect tracking."""
        return ConfirmedPublisher(self._reconnects, self._confirm_window)

    # --- consuming -----------------------------------------------------------------------------

    async def subscribe(
        self,
        queue: str,
        handler: Handler,
        *,
        bindings: Sequence[str],
        exclusive: bool = False,
    ) -> str:
        declared = await self._declare_queue(self._consume_channel, queue, bindings, exclusive=exclusive)
        self.consume(declared, parse_event, handler)
        return declared.name

    def consume(
        self,
        queue: AbstractQueue,
        decode: Callable[[bytes], T],
        handler: Callable[[T], Awaitable[None]],
    ) -> None:
        """Handle `queue`'s messages one at a time, in order, acking each after its handler; a
        body `decode` refuses, or a handler that raises, dead-letters the message."""
        jobs = {"consume": self._consume(queue, decode, handler), "watch": self._watch_waiting(queue)}
        for name, job in jobs.items():
            task = asyncio.create_task(job, name=f"{name} {queue.name}")
            self._consumers.add(task)
            task.add_done_callback(self._consumers.discard)

    async def _watch_waiting(self, queue: AbstractQueue) -> None:
        """Keep how many messages wait in `queue` (its lag), asking the broker every WAITING_EVERY."""
        while True:
            with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError, TimeoutError):
                async with asyncio.timeout(WAITING_EVERY):
                    declared = await queue.declare()  # the same arguments again: answers its counts
                self._waiting[queue.name] = declared.message_count or 0
            await asyncio.sleep(WAITING_EVERY)

    def collector(self) -> Collector:
        """This bus's figures for a service's Prometheus registry."""
        return _BusCollector(self)

    async def _consume(
        self,
        queue: AbstractQueue,
        decode: Callable[[bytes], T],
        handler: Callable[[T], Awaitable[None]],
    ) -> None:
        inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        tag = await queue.consume(inbox.put)  # deliveries queue up in order; handled below
        try:
            while True:
                message = await inbox.get()
                if await self._handle(queue.name, message, decode, handler):
                    await _settle(queue.name, message, ack=True)
        finally:
            with contextlib.suppress(Exception):
                await queue.cancel(tag)

    @staticmethod
    async def _handle(
        queue: str,
        message: AbstractIncomingMessage,
        decode: Callable[[bytes], T],
        handler: Callable[[T], Awaitable[None]],
    ) -> bool:
        """Decode and handle one message; False when it was dead-lettered instead."""
        try:
            item = decode(message.body)
        except ValidationError as error:
            logger.error(
                "queue %s: unparsable message %s (%s) dead-lettered: %s",
                queue,
                message.message_id,
                message.routing_key,
                _first_line(error),
            )
            await _settle(queue, message, ack=False)
            return False
        try:
            await handler(item)
        except Exception:
            logger.exception(
                "queue %s: handler failed on message %s (%s); dead-lettered",
                queue,
                message.message_id,
                message.type,
            )
            await _settle(queue, message, ack=False)
            return False
        return True

    # --- requests and answers -------------------------------------------------------------------

    async def _json_rpc(self) -> JsonRPC:
        """The RPC client and server of this connection, on a channel of its own, made on first use."""
        async with self._rpc_lock:
            if self._rpc is None:
                rpc = await JsonRPC.create(await self._connection.channel())
                assert isinstance(rpc, JsonRPC)
                self._rpc = rpc
            return self._rpc

    async def serve(self, method: str, handler: RpcHandler) -> None:
        async def answer(**payload: Any) -> dict[str, Any]:
            return await handler(payload)

        # the queue goes with its server: a call while no monitor runs comes back at once
        rpc = await self._json_rpc()
        previous = self._served.pop(method, None)
        if previous is not None:
            await rpc.unregister(previous)
        await rpc.register(self._names.queue(f"rpc.{method}"), answer, auto_delete=True, durable=False)
        self._served[method] = answer

    async def call(self, method: str, payload: dict[str, Any], answer_within: float) -> dict[str, Any]:
        rpc = await self._json_rpc()
        try:
            async with asyncio.timeout(answer_within):
                name = self._names.queue(f"rpc.{method}")
                answer = await rpc.call(name, kwargs=payload, expiration=math.ceil(answer_within))
        except aio_pika.exceptions.MessageProcessError:
            raise RpcUnavailable(f"nobody serves {method}") from None
        except TimeoutError:
            raise RpcUnavailable(f"{method}: no answer within {answer_within:g} s") from None
        except aio_pika.patterns.rpc.JsonRPCError as error:
            logger.error("rpc %s failed on the server: %s", method, error.args[1:])
            raise RpcUnavailable(f"{method} failed on the server") from None
        except (aiormq.exceptions.AMQPError, ConnectionError) as error:
            raise RpcUnavailable(f"{method}: the broker connection failed ({type(error).__name__})") from None
        if not isinstance(answer, dict):
            raise RpcUnavailable(f"{method}: the answer is not a JSON object")
        return answer

    # --- dead letters --------------------------------------------------------------------------

    async def take_dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        assert self._dead_queue is not None
        taken: list[DeadLetter] = []
        while len(taken) < limit:
            message = await self._dead_queue.get(no_ack=False, fail=False)
            if message is None:
                break
            taken.append(_dead_letter(message))
            await message.ack()
        return taken

    async def delete_topology(self) -> None:
        """Remove every queue and exchange under this bus's prefix (tests' clean-up)."""
        await self._stop_consumers()
        channel = await self._connection.channel()
        for role in topology.SERVICE_QUEUES:
            await channel.queue_delete(self._names.queue(role))
        for shard in range(self._names.shards):
            await channel.queue_delete(self._names.shard_queue(shard))
        await channel.exchange_delete(self._names.shards_exchange)
        await channel.queue_delete(self._names.dead_queue)
        await channel.exchange_delete(self._names.events_exchange)
        await channel.exchange_delete(self._names.dead_exchange)
        await channel.close()

    async def _close(self) -> None:
        with contextlib.suppress(PublishError):
            await self.flush()
        await self._stop_consumers()

    async def _stop_consumers(self) -> None:
        for task in list(self._consumers):
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)


class _Settled:
    """This process's messages acked and dead-lettered, per queue (for `/metrics`)."""

    acked: collections.Counter[str] = collections.Counter()
    dead_lettered: collections.Counter[str] = collections.Counter()


async def _settle(queue: str, message: AbstractIncomingMessage, *, ack: bool) -> None:
    """Ack, or reject to the DLX. A channel lost meanwhile is no crash: the broker delivers the
    unsettled message again after the reconnect."""
    try:
        await (message.ack() if ack else message.reject(requeue=False))
        (_Settled.acked if ack else _Settled.dead_lettered)[queue] += 1
    except (
        aiormq.exceptions.AMQPError,
        aiormq.exceptions.ChannelInvalidStateError,
        ConnectionError,
    ) as error:
        logger.warning(
            "queue %s: message %s not settled (%r); the broker will deliver it again",
            queue,
            message.message_id,
            error,
        )


class _BusCollector(Collector):
    def __init__(self, bus: RabbitBus) -> None:
        self._bus = bus

    def collect(self) -> Iterator[Metric]:
        connected = GaugeMetricFamily("callbridge_bus_connected", "1 while connected to RabbitMQ")
        connected.add_metric([], 1.0 if self._bus.connected else 0.0)
        reconnects = CounterMetricFamily(
            "callbridge_bus_reconnects", "Connections to RabbitMQ re-established"
        )
        reconnects.add_metric([], self._bus.reconnects)
        acked = CounterMetricFamily(
            "callbridge_bus_consumed", "Messages handled and acked, per queue", labels=["queue"]
        )
        dead = CounterMetricFamily(
            "callbridge_bus_dead_lettered",
            "Messages rejected to the dead-letter queue (unparsable, or their handler failed)",
            labels=["queue"],
        )
        for family, counts in ((acked, _Settled.acked), (dead, _Settled.dead_lettered)):
            for queue, count in counts.items():
                family.add_metric([queue], count)
        waiting = GaugeMetricFamily(
            "callbridge_bus_queue_waiting",
            f"Messages waiting in a consumed queue: its lag (asked every {WAITING_EVERY:g} s)",
            labels=["queue"],
        )
        for queue, count in self._bus._waiting.items():
            waiting.add_metric([queue], count)
        yield from (connected, reconnects, acked, dead, waiting)


def _dead_letter(message: AbstractIncomingMessage) -> DeadLetter:
    deaths: Any = (message.headers or {}).get("x-death") or [{}]
    death = deaths[0] if isinstance(deaths, list) and deaths else {}
    queue = str(death.get("queue", ""))
    reason = str(death.get("reason", "rejected"))
    keys = death.get("routing-keys") or [message.routing_key or ""]
    return DeadLetter(routing_key=str(keys[0]), body=message.body, queue=queue, reason=reason)


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else repr(error)
