"""Consuming a RabbitMQ queue, the same way for every queue of every service: one message at a
time, in order, acked after its handler returns (acks go together: see `consume`); a body that
does not decode, or whose handler raises, is rejected without requeue (to the dead-letter
exchange) and logged. A handler that fails in a way that may pass (`shared.bus.transient`: the
broker away, a full disk, a locked database) is given the same message again, after a pause
(`shared.bus.patiently`), for as long as the channel it came on is open (once it is closed, the
broker delivers it again), so the queue's order holds and nothing is dead-lettered for a passing
fault. Counts per queue (acked, dead-lettered, handled again, waiting) are kept for `/metrics`
(`rabbit_metrics.py`)."""

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from functools import partial
from typing import Any, ClassVar, TypeVar

import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from pydantic import ValidationError

from .bus import patiently

logger = logging.getLogger(__name__)
T = TypeVar("T")
WAITING_EVERY = 15.0  # seconds between two looks at how many messages wait in a consumed queue
ACK_EVERY = 100  # a one-at-a-time consumer acks at least this often (see `consume`)


class Consumed:
    """This process's messages acked, dead-lettered and waiting, per queue (for `/metrics`)."""

    acked: ClassVar[collections.Counter[str]] = collections.Counter()
    dead_lettered: ClassVar[collections.Counter[str]] = collections.Counter()
    retried: ClassVar[collections.Counter[str]] = collections.Counter()
    waiting: ClassVar[dict[str, int]] = {}


_HELD: ContextVar[Callable[[], bool]] = ContextVar("held", default=lambda: True)


def holding() -> Callable[[], bool]:
    """In a handler: whether the message it handles is still this consumer's to settle (the
    channel it came on is open); work it hands on (the webhooks' lanes) takes this along."""
    return _HELD.get()


async def consume(
    queue: AbstractQueue,
    decode: Callable[[bytes], T],
    handler: Callable[[T], Awaitable[None]],
    *,
    side_by_side: bool = False,
    until: asyncio.Event | None = None,
) -> None:
    """Handle `queue`'s messages until cancelled: one at a time, or with `side_by_side` each as
    it comes, up to the channel's prefetch at once, each acked when its handler returns (the
    handler keeps whatever order its items need: the webhooks' lanes keep each chain's).

    One at a time, the handled messages are acked together (one `multiple` ack) once no further
    delivery is in hand, or every ACK_EVERY: a burst costs one ack frame, not one per message,
    and a message is never acked before its handler returned. A `multiple` ack settles every
    earlier delivery of its channel, so such a queue must have its channel to itself
    (`RabbitBus.subscribe` gives it one); a process that dies with acks unsent gets those messages
    again, as it would between a handler and its ack.

    Once `until` is set, no further message is started: those in hand are finished and settled,
    and this returns with the consumer still registered, so that the caller closes the channel
    and the broker takes back the messages delivered but not started, in their places, before
    another consumer gets any (a handover that keeps the queue's order)."""
    inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
    tag = await queue.consume(inbox.put)  # deliveries queue up in order; handled below
    in_hand: set[asyncio.Task[None]] = set()
    acks = _Acks(queue.name)
    stopping: asyncio.Future[Any] = asyncio.ensure_future((until or asyncio.Event()).wait())
    try:
        while True:
            message = await _next(inbox, stopping)
            if message is None:
                await asyncio.gather(*in_hand, return_exceptions=True)
                await acks.send()
                return
            if not _channel_open(message):
                # prefetched on a channel lost since: the broker delivers it again (maybe to a
                # replica that took over): handling it here as well would deliver it twice
                continue
            if side_by_side:
                task = asyncio.create_task(_handle_and_settle(queue.name, message, decode, handler))
                in_hand.add(task)
                task.add_done_callback(in_hand.discard)
                continue
            if await _handle(queue.name, message, decode, handler):
                acks.handled(message)
            if inbox.empty() or acks.count >= ACK_EVERY:
                await acks.send()
    finally:
        await acks.send()
        stopping.cancel()
        for task in in_hand:
            task.cancel()
        if not (until and until.is_set()):
            with contextlib.suppress(Exception):
                await queue.cancel(tag)


async def _next(
    inbox: "asyncio.Queue[AbstractIncomingMessage]", stopping: "asyncio.Future[Any]"
) -> AbstractIncomingMessage | None:
    """The next delivery, or None once `stopping` is done (what was delivered but not started
    stays unsettled: closing the channel gives it back to the broker)."""
    if stopping.done():
        return None
    if not inbox.empty():
        return inbox.get_nowait()
    getting: asyncio.Future[Any] = asyncio.ensure_future(inbox.get())
    try:
        await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getting.done():
            getting.cancel()
    if stopping.done():
        if getting.done() and not getting.cancelled():
            inbox.put_nowait(getting.result())  # not started: left for the channel's close
        return None
    message: AbstractIncomingMessage = getting.result()
    return message


class _Acks:
    """A one-at-a-time consumer's messages handled and not acked yet (see `consume`)."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.last: AbstractIncomingMessage | None = None  # the latest handled, acking all before it
        self.count = 0

    def handled(self, message: AbstractIncomingMessage) -> None:
        self.last, self.count = message, self.count + 1

    async def send(self) -> None:
        if self.last is not None:
            last, count = self.last, self.count
            self.last, self.count = None, 0
            await _settle(self.queue, last, ack=True, multiple=True, count=count)


async def _handle_and_settle(
    queue: str,
    message: AbstractIncomingMessage,
    decode: Callable[[bytes], T],
    handler: Callable[[T], Awaitable[None]],
) -> None:
    if await _handle(queue, message, decode, handler):
        await _settle(queue, message, ack=True)


async def watch_waiting(queue: AbstractQueue, until: asyncio.Event | None = None) -> None:
    """Keep how many messages wait in `queue` (its lag), asking the broker every WAITING_EVERY,
    until cancelled or `until` is set. Stop it with `until` where the connection goes on: a
    task cancelled while it waits for the broker's answer makes aiormq close the channel (and a
    late answer can jam the connection's reader), so the question is always let finish."""
    stop = until or asyncio.Event()
    while not stop.is_set():
        with contextlib.suppress(aiormq.exceptions.AMQPError, ConnectionError):
            declared = await queue.declare()  # the same arguments again: answers its counts
            Consumed.waiting[queue.name] = declared.message_count or 0
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), WAITING_EVERY)


async def _handle(
    queue: str,
    message: AbstractIncomingMessage,
    decode: Callable[[bytes], T],
    handler: Callable[[T], Awaitable[None]],
) -> bool:
    """Decode and handle one message; False when it was dead-lettered instead."""
    _HELD.set(partial(_channel_open, message))
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
        return await patiently(
            partial(handler, item),
            f"queue {queue}: message {message.message_id}",
            held=lambda: _channel_open(message),
            retried=lambda: Consumed.retried.update([queue]),
        )
    except Exception:
        logger.exception(
            "queue %s: handler failed on message %s (%s); dead-lettered",
            queue,
            message.message_id,
            message.type,
        )
        await _settle(queue, message, ack=False)
        return False


def _channel_open(message: AbstractIncomingMessage) -> bool:
    try:
        return not message.channel.is_closed
    except aiormq.exceptions.ChannelInvalidStateError:
        return False


async def _settle(
    queue: str, message: AbstractIncomingMessage, *, ack: bool, multiple: bool = False, count: int = 1
) -> None:
    """Ack (with `multiple`, the `count` messages up to this one), or reject to the DLX. A channel
    lost meanwhile is no crash: the broker delivers the unsettled messages again after the
    reconnect."""
    try:
        await (message.ack(multiple=multiple) if ack else message.reject(requeue=False))
        (Consumed.acked if ack else Consumed.dead_lettered)[queue] += count
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


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else repr(error)
