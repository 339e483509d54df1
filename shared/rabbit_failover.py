"""One connection over a list of RabbitMQ URLs (`[bus] amqp_url`: a cluster's nodes)."""

import logging
from collections.abc import Sequence
from typing import Any

import aio_pika
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL

from .logging import redact

logger = logging.getLogger(__name__)


class FailoverConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection (channels, queues, consumers restored after a reconnect) over
    several brokers, a cluster's nodes: it connects to the first URL that answers, and after a
    lost connection tries the next one, in order, going round. Each attempt goes once round the
    list; aio-pika's reconnect loop repeats it until one answers. (aio-pika takes one URL: this
    sets the one it connects to before each attempt; the query parameters are the first URL's.)"""

    def __init__(self, urls: Sequence[str], **kwargs: Any) -> None:
        self._urls = [URL(url) for url in urls]
        self._next = 0
        super().__init__(self._urls[0], **kwargs)

    async def _RobustConnection__connect_transport(self) -> None:  # aio-pika's attempt, per URL
        failure: BaseException | None = None
        for _ in self._urls:
            self.url, self._next = self._urls[self._next], (self._next + 1) % len(self._urls)
            try:
                await super()._RobustConnection__connect_transport()  # type: ignore[misc]
            except CONNECTION_EXCEPTIONS as error:
                if len(self._urls) > 1:
                    logger.warning("RabbitMQ at %s: %s", redact(str(self.url)), error)
                failure = error
                continue
            if len(self._urls) > 1:
                logger.info("bus on %s", redact(str(self.url)))
            return
        assert failure is not None
        raise failure
