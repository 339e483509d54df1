"""Which webhooks replicas are alive, and which shards each of them consumes.

Every replica sends a heartbeat (its id) to the members exchange every BEAT seconds and hears
everyone's, its own included; a replica not heard from for EXPIRY seconds is gone, one that stops
cleanly says so at once. Each shard belongs to the live replica that ranks highest for it
(rendezvous hashing): every replica computes the same owners from the same members, each owns
about 64/N shards, and a replica that joins or leaves moves only the shards it gains or had.

While the replicas do not agree yet (one just started, one just died and is not yet expired),
two may consume a shard for a moment: the shard's single active consumer lets only one of them
have its messages, and the other lets go as soon as it sees that it is not the owner. A replica
lets a shard go by finishing what it holds of it and closing its channel (`OwnedShards`), so the
next owner starts exactly where it stopped, in order.
"""

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from shared.rabbit_bus import RabbitBus
from shared.topology import SHARDS

from .shards import members_exchange

logger = logging.getLogger(__name__)

BEAT = 1.0  # seconds between two heartbeats of a replica
EXPIRY = 3.5  # seconds without a heartbeat after which a replica counts as gone
STOP_GRACE = 15.0  # seconds a stopping replica finishes the deliveries in hand
WATCH_GRACE = 5.0  # seconds a shard's backlog question may take to be answered when let go


def replica_id() -> str:
    """This process's id among the replicas: readable in logs, unique across restarts."""
    return f"{socket.gethostname()}/{os.getpid()}/{uuid4().hex[:6]}"


def owner(shard: int, members: Iterable[str]) -> str:
    """The member that owns `shard`: the highest ranked for it (the same everywhere)."""
    return max(
        members, key=lambda member: hashlib.blake2b(f"{member}|{shard}".encode(), digest_size=8).digest()
    )


@dataclass
class Members:
    """The replicas heard from, by when (this process's monotonic clock), this one always in."""

    me: str
    expiry: float = EXPIRY
    _seen: dict[str, float] = field(default_factory=dict)

    def heard(self, member: str, at: float, *, leaving: bool = False) -> None:
        if leaving:
            self._seen.pop(member, None)
        elif member != self.me:
            self._seen[member] = at

    def alive(self, now: float) -> frozenset[str]:
        for member in [m for m, at in self._seen.items() if now - at > self.expiry]:
            del self._seen[member]
        return frozenset({self.me, *self._seen})

    def mine(self, now: float) -> frozenset[int]:
        members = self.alive(now)
        return frozenset(shard for shard in range(SHARDS) if owner(shard, members) == self.me)


class Heartbeats:
    """The members on RabbitMQ: `changed` is set whenever the live replicas are others than
    before. `await start()`, then `run()` until cancelled; `leave()` on a clean stop."""

    def __init__(self, bus: RabbitBus, members: Members, clock: Callable[[], float] = time.monotonic) -> None:
        self._bus = bus
        self._members = members
        self._clock = clock
        self._known = frozenset({members.me})
        self.changed = asyncio.Event()
        self._channel: AbstractChannel
        self._exchange: aio_pika.abc.AbstractExchange

    async def start(self) -> None:
        self._channel = await self._bus.open_channel()
        name = members_exchange(self._bus.names)
        self._exchange = await self._channel.declare_exchange(name, aio_pika.ExchangeType.FANOUT)
        inbox = await self._channel.declare_queue(
            f"{name}.{self._members.me.replace('/', '.')}", exclusive=True, auto_delete=True
        )
        await inbox.bind(self._exchange)
        await inbox.consume(self._heard, no_ack=True)
        await self._beat()

    async def run(self) -> None:
        while True:
            await asyncio.sleep(BEAT)
            with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
                await self._beat()  # while RabbitMQ is away: nobody hears anybody, nothing moves
            self._look()

    async def leave(self) -> None:
        with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
            await self._send({"member": self._members.me, "leaving": True})
            await self._channel.close()

    def alive(self) -> frozenset[str]:
        return self._members.alive(self._clock())

    def mine(self) -> frozenset[int]:
        """The shards this replica owns among the replicas alive now."""
        return self._members.mine(self._clock())

    async def _beat(self) -> None:
        await self._send({"member": self._members.me, "leaving": False})

    async def _send(self, body: dict[str, object]) -> None:
        await self._exchange.publish(
            aio_pika.Message(json.dumps(body).encode(), expiration=EXPIRY, type="webhooks.member"),
            routing_key="",
        )

    async def _heard(self, message: AbstractIncomingMessage) -> None:
        try:
            body = json.loads(message.body)
            member, leaving = str(body["member"]), bool(body["leaving"])
        except (ValueError, KeyError, TypeError):
            logger.warning("members exchange: a message that is no heartbeat ignored")
            return
        self._members.heard(member, self._clock(), leaving=leaving)
        self._look()

    def _look(self) -> None:
        alive = self._members.alive(self._clock())
        if alive != self._known:
            joined, left = sorted(alive - self._known), sorted(self._known - alive)
            logger.info(
                "webhooks replicas: %d%s%s",
                len(alive),
                f"; joined: {', '.join(joined)}" if joined else "",
                f"; gone: {', '.join(left)}" if left else "",
            )
            self._known = alive
            self.changed.set()


@dataclass
class _Shard:
    channel: AbstractChannel
    until: asyncio.Event
    consuming: "asyncio.Task[None]"
    watching: "asyncio.Task[None]"


class OwnedShards:
    """Consume the shards this replica owns; let go of those it no longer owns (finish what it
    holds of them, then close their channels), take up those it now owns."""

    def __init__(
        self,
        open_shard: Callable[[int], Awaitable[tuple[AbstractChannel, aio_pika.abc.AbstractQueue]]],
        consume: Callable[[aio_pika.abc.AbstractQueue, asyncio.Event], Coroutine[Any, Any, None]],
        watch: Callable[[aio_pika.abc.AbstractQueue, asyncio.Event], Coroutine[Any, Any, None]],
    ) -> None:
        self._open_shard = open_shard
        self._consume = consume
        self._watch = watch
        self._shards: dict[int, _Shard] = {}

    @property
    def owned(self) -> frozenset[int]:
        return frozenset(self._shards)

    async def follow(self, heartbeats: Heartbeats) -> None:
        """Until cancelled: consume what `heartbeats` says is this replica's, as it changes."""
        while True:
            heartbeats.changed.clear()
            await self.take(heartbeats.mine())
            await heartbeats.changed.wait()

    async def take(self, mine: frozenset[int]) -> None:
        """Consume exactly the shards `mine`."""
        for shard in sorted(mine - self._shards.keys()):
            channel, queue = await self._open_shard(shard)
            until = asyncio.Event()
            self._shards[shard] = _Shard(
                channel,
                until,
                asyncio.create_task(self._consume(queue, until), name=f"consume shard {shard}"),
                asyncio.create_task(self._watch(queue, until), name=f"watch shard {shard}"),
            )
        gone = sorted(self._shards.keys() - mine)
        await asyncio.gather(*(self._let_go(shard) for shard in gone))
        if gone or mine:
            logger.debug("this replica consumes %d of %d shards", len(self._shards), SHARDS)

    async def _let_go(self, shard: int) -> None:
        held = self._shards.pop(shard)
        held.until.set()  # the consumer finishes what it holds; the watch its question
        await asyncio.gather(held.consuming, return_exceptions=True)
        if not (await asyncio.wait({held.watching}, timeout=WATCH_GRACE))[0]:
            held.watching.cancel()  # the broker does not answer: the channel goes anyway
        with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError, RuntimeError):
            await held.channel.close()  # what was delivered but not started goes back, in place

    async def close(self) -> None:
        """Let go of every shard (the process stops): what is in hand is finished for up to
        STOP_GRACE seconds; what is still in hand then comes again, to whoever takes over."""
        letting_go = asyncio.gather(*(self._let_go(shard) for shard in list(self._shards)))
        try:
            await asyncio.wait_for(letting_go, STOP_GRACE)
        except TimeoutError:
            logger.warning(
                "deliveries still in hand after %.0f s: they are made again after the stop", STOP_GRACE
            )
