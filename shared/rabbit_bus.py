"""RabbitBus: the bus on RabbitMQ through aio-pika.

- One robust connection per process (named after the service), one publishing channel with
  publisher confirms, one consuming channel with a prefetch window.
- A durable topic exchange (`callbridge.events`) and a dead-letter exchange with its durable
  queue (`callbridge.dead`): the bus's contract, declared by everyone who connects.
- Persistent JSON messages whose routing key is the event type, plus the routing keys the
  topology's rules add (`topology.routing_keys`: an event the webhooks service wants also names
  its chain's shard). Publishing keeps up to `confirm_window` confirms in flight instead of
  awaiting each one, in order, and resends what a lost connection interrupted
  (`rabbit_publisher.py`).
- Each service declares the queues it consumes (`subscribe`, or its own: the webhooks shards,
  the recordings conversions); consumers handle one message at a time, in order
  (`rabbit_consumer.py`). Requests and answers: `rabbit_rpc.py`.
"""

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar
from uuid import uuid4

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from prometheus_client.registry import Collector

from . import topology
from .bus import DeadLetter, Handler, PublishError, RpcHandler
from .event_base import Event
from .events import encode_event, parse_event
from .logging import redact
from .rabbit_consumer import consume, watch_waiting
from .rabbit_failover import FailoverConnection
from .rabbit_metrics import BusCollector
from .rabbit_publisher import ConfirmedPublisher, Reconnects, persistent
from .rabbit_queue_types import queue_types_checked
from .rabbit_rpc import RabbitRpc
from .settings import BusSettings
from .values import url_list

logger = logging.getLogger(__name__)
T = TypeVar("T")


class RabbitBus:
    def __init__(
        self,
        connection: FailoverConnection,
        publish_channel: AbstractChannel,
        consume_channel: AbstractChannel,
        names: topology.Topology,
        windows: tuple[int, int],
    ) -> None:
        """`windows`: (prefetch, confirm window)."""
        self._connection = connection
        self._publish_channel = publish_channel
        self._consume_channel = consume_channel
        self._names = names
        self._prefetch, self._confirm_window = windows
        self._reconnects = Reconnects(connection)
        self._publisher = ConfirmedPublisher(self._reconnects, self._confirm_window)
        self._consumers: set[asyncio.Task[None]] = set()
        self._exchange: AbstractExchange | None = None
        self._exchanges: dict[str, AbstractExchange] = {}  # by name: where publish_raw sends
        self._dead_queue: AbstractQueue | None = None
        self._rpc = RabbitRpc(connection, names)

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
        """`url`: one broker, or a cluster's nodes comma-separated (`FailoverConnection`)."""
        names = names or topology.Topology()
        urls = url_list(url)
        shown = ", ".join(redact(part) for part in urls)
        try:
            connection = FailoverConnection(urls, client_properties={"connection_name": connection_name})
            await connection.connect()
        except (OSError, aiormq.exceptions.AMQPError) as error:
            raise ConnectionError(f"RabbitMQ not reachable at {shown}: {error}") from None
        except ValueError:  # a URL the settings let through: never show it, it holds the password
            raise ConnectionError("RabbitMQ: [bus] amqp_url is not a valid URL") from None
        async with connection, queue_types_checked(names.queue_type):
            publish_channel = await connection.channel(publisher_confirms=True)
            consume_channel = await connection.channel(publisher_confirms=False)
            await consume_channel.set_qos(prefetch_count=prefetch)
            bus = cls(connection, publish_channel, consume_channel, names, (prefetch, confirm_window))
            await bus._declare()
            logger.info(
                "bus connected to %s as %s (exchange %s, %s queues)",
                redact(str(connection.url)),
                connection_name,
                names.events_exchange,
                names.queue_type,
            )
            try:
                yield bus
            finally:
                await bus._close()

    @property
    def connected(self) -> bool:
        return self._connection.connected.is_set()

    @property
    def url(self) -> str:
        """The broker (of the configured URLs) this bus is connected to, or last was; its
        password hidden."""
        return redact(str(self._connection.url))

    @classmethod
    def configured(
        cls, settings: BusSettings, connection_name: str
    ) -> contextlib.AbstractAsyncContextManager["RabbitBus"]:
        """`connect` with the `[bus]` section of the configuration; the connection's name (in
        RabbitMQ's management UI and `rabbitmqctl list_connections`) says which process it is."""
        return cls.connect(
            settings.amqp_url,
            names=topology.Topology.of(settings),
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
        batches = await self._publish_channel.declare_exchange(
            self._names.batches_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        self._exchanges = {self._names.events_exchange: self._exchange, self._names.batches_exchange: batches}
        dead = await self._publish_channel.declare_exchange(
            self._names.dead_exchange, aio_pika.ExchangeType.FANOUT, durable=True
        )
        self._dead_queue = await self._publish_channel.declare_queue(
            self._names.dead_queue, durable=True, arguments=self._names.durable()
        )
        await self._dead_queue.bind(dead)

    async def _declare_queue(
        self,
        channel: AbstractChannel,
        role: str,
        bindings: Sequence[str],
        *,
        exclusive: bool,
        single_active: bool,
    ) -> AbstractQueue:
        """A role's queue (`recordings` → `callbridge.recordings`), dead-lettering to the DLX; an
        exclusive one gets a unique name and goes with its connection."""
        arguments: dict[str, Any] = {"x-dead-letter-exchange": self._names.dead_exchange}
        if single_active:
            arguments["x-single-active-consumer"] = True
        queue = await channel.declare_queue(
            self._names.queue(f"{role}.{uuid4().hex[:12]}" if exclusive else role),
            durable=not exclusive,
            exclusive=exclusive,
            auto_delete=exclusive,
            arguments=arguments if exclusive else self._names.durable(arguments),
        )
        for binding in bindings:
            await queue.bind(self._names.exchange_for(binding), routing_key=binding)
        return queue

    # --- publishing ----------------------------------------------------------------------------

    async def publish(self, event: Event, encoded: bytes | None = None) -> None:
        """Send `event`: its type is the routing key, and the topology's further keys ride in the
        CC header (an event the webhooks service wants names its chain's shard)."""
        assert self._exchange is not None
        further = self._names.routing_keys(event)[1:]
        headers = {"CC": further} if further else None
        body = encode_event(event) if encoded is None else encoded
        message = persistent(body, message_id=str(event.event_id), kind=event.type, headers=headers)
        await self._publisher.send(self._exchange, event.type, message)

    async def publish_raw(self, routing_key: str, body: bytes) -> None:
        exchange = self._exchanges[self._names.exchange_for(routing_key)]
        await self._publisher.send(
            exchange, routing_key, persistent(body, message_id=uuid4().hex, kind=routing_key)
        )

    async def flush(self) -> None:
        await self._publisher.flush()

    @property
    def names(self) -> topology.Topology:
        """The names of this bus's exchanges and queues (`[bus] exchange` is their prefix)."""
        return self._names

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

    async def declare(
        self, queue: str, *, bindings: Sequence[str], exclusive: bool = False, single_active: bool = False
    ) -> AbstractQueue:
        """A service's queue (`subscribe` says what the flags mean), declared and bound but not
        consumed: it keeps what is published from now on."""
        flags = {"exclusive": exclusive, "single_active": single_active}
        return await self._declare_queue(self._consume_channel, queue, bindings, **flags)

    async def unbind(self, queue: str, bindings: Sequence[str]) -> None:
        """Take `bindings` (routing keys an earlier version bound) off a service's queue, if it has
        them: the queue keeps the bindings it is declared with."""
        declared = await self._consume_channel.declare_queue(self._names.queue(queue), passive=True)
        for binding in bindings:
            await declared.unbind(self._names.exchange_for(binding), routing_key=binding)

    async def subscribe(
        self,
        queue: str,
        handler: Handler,
        *,
        bindings: Sequence[str],
        exclusive: bool = False,
        single_active: bool = False,
    ) -> str:
        channel = await self.open_channel(prefetch=self._prefetch)  # its own: its acks go together
        declared = await self._declare_queue(
            channel, queue, bindings, exclusive=exclusive, single_active=single_active
        )
        self.consume(declared, parse_event, handler)
        return declared.name

    def consume(
        self,
        queue: AbstractQueue,
        decode: Callable[[bytes], T],
        handler: Callable[[T], Awaitable[None]],
        *,
        side_by_side: bool = False,
    ) -> None:
        """Handle `queue`'s messages one at a time, in order (or `side_by_side`: see
        `rabbit_consumer.consume`), acking each after its handler; a body `decode` refuses, or a
        handler that raises, dead-letters the message."""
        jobs = {
            "consume": consume(queue, decode, handler, side_by_side=side_by_side),
            "watch": watch_waiting(queue),
        }
        for name, job in jobs.items():
            task = asyncio.create_task(job, name=f"{name} {queue.name}")
            self._consumers.add(task)
            task.add_done_callback(self._consumers.discard)

    def collector(self) -> Collector:
        """This bus's figures for a service's Prometheus registry."""
        return BusCollector(self)

    # --- requests and answers -------------------------------------------------------------------

    async def serve(self, method: str, handler: RpcHandler) -> None:
        await self._rpc.serve(method, handler)

    async def call(self, method: str, payload: dict[str, Any], answer_within: float) -> dict[str, Any]:
        return await self._rpc.call(method, payload, answer_within)

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

    async def _close(self) -> None:
        with contextlib.suppress(PublishError):
            await self.flush()
        await self._stop_consumers()

    async def _stop_consumers(self) -> None:
        for task in list(self._consumers):
            task.cancel()
        await asyncio.gather(*self._consumers, return_exceptions=True)


def _dead_letter(message: AbstractIncomingMessage) -> DeadLetter:
    deaths: Any = (message.headers or {}).get("x-death") or [{}]
    death = deaths[0] if isinstance(deaths, list) and deaths else {}
    queue = str(death.get("queue", ""))
    reason = str(death.get("reason", "rejected"))
    keys = death.get("routing-keys") or [message.routing_key or ""]
    return DeadLetter(routing_key=str(keys[0]), body=message.body, queue=queue, reason=reason)
