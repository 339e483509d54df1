"""Pipelined, ordered, confirmed publishing on one aio-pika channel, surviving reconnects.

`ConfirmedPublisher.send` starts each publish as a task in call order and returns without
waiting for the broker's confirm (up to `window` confirms in flight); aiormq assigns delivery
tags and writes frames under a FIFO lock, so the broker receives messages in call order.
`flush` waits for every confirm and raises `PublishError` naming what was not confirmed.

A publish interrupted by a lost connection is sent again once the robust connection is back
(for up to `PUBLISH_RETRY_SECONDS`): a broker restart costs a duplicate (same `message_id`),
never a lost message. A broker's nack is not retried.
"""

import asyncio
import contextlib
import logging
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import AbstractExchange, AbstractRobustConnection

from .bus import PublishError

logger = logging.getLogger(__name__)

PUBLISH_RETRY_SECONDS = 60.0
_INTERRUPTED = (
    aiormq.exceptions.AMQPConnectionError,
    aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ChannelClosed,
    ConnectionError,
)


class Reconnects:
    """Counts the robust connection's reconnects; lets publishers wait for the next one."""

    def __init__(self, connection: AbstractRobustConnection) -> None:
        self.count = 0
        self._changed = asyncio.Condition()
        connection.reconnect_callbacks.add(self._on_reconnect)

    async def _on_reconnect(self, *_: Any) -> None:
        logger.warning("reconnected to the broker (reconnect %d)", self.count + 1)
        async with self._changed:
            self.count += 1
            self._changed.notify_all()

    async def wait_beyond(self, seen: int) -> None:
        """Return once the connection has been re-established more than `seen` times."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.count > seen)


class ConfirmedPublisher:
    def __init__(self, reconnects: Reconnects, window: int) -> None:
        self._reconnects = reconnects
        self._window = asyncio.Semaphore(window)
        self._in_flight: set[asyncio.Task[str | None]] = set()
        self._failures: list[str] = []

    async def send(self, exchange: AbstractExchange, routing_key: str, message: aio_pika.Message) -> None:
        await self._window.acquire()
        task = asyncio.create_task(self._confirm(exchange, routing_key, message))
        self._in_flight.add(task)
        task.add_done_callback(self._settled)

    async def flush(self) -> None:
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight))
        if self._failures:
            failures, self._failures = self._failures, []
            raise PublishError(f"{len(failures)} message(s) not confirmed, first: {failures[0]}")

    def _settled(self, task: asyncio.Task[str | None]) -> None:
        self._in_flight.discard(task)
        self._window.release()

    async def _confirm(
        self, exchange: AbstractExchange, routing_key: str, message: aio_pika.Message
    ) -> str | None:
        """Publish until confirmed; None, or what went wrong (also kept for `flush`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PUBLISH_RETRY_SECONDS
        failure: Exception
        while True:
            seen = self._reconnects.count
            try:
                await exchange.publish(message, routing_key=routing_key, mandatory=False)
                return None
            except _INTERRUPTED as error:
                failure = error
                remaining = deadline - loop.time()
                if remaining > 0:
                    logger.warning(
                        "publish of %s %s interrupted (%r); sending again after reconnecting",
                        routing_key,
                        message.message_id,
                        error,
                    )
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(remaining):
                            await self._reconnects.wait_beyond(seen)
                    if self._reconnects.count > seen:
                        continue
            except Exception as error:  # a nack, or anything unforeseen: not retried
                failure = error
            logger.error("publish of %s %s not confirmed: %r", routing_key, message.message_id, failure)
            self._failures.append(f"{routing_key} {message.message_id}: {failure!r}")
            return self._failures[-1]


def persistent(body: bytes, *, message_id: str, kind: str, **properties: Any) -> aio_pika.Message:
    return aio_pika.Message(
        body,
        content_type="application/json",
        message_id=message_id,
        type=kind,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        **properties,
    )
