"""The broker's refusal to declare a queue of another type than `[bus] queue_type`, said so that
the operator knows what to do."""

import contextlib
import re
from collections.abc import AsyncIterator

import aiormq

from .settings import ConfigError


class QueueTypeMismatch(ConfigError):
    """A durable queue exists with another type than `[bus] queue_type`."""


_INEQUIVALENT_TYPE = re.compile(
    r"inequivalent arg 'x-queue-type' for queue '(?P<queue>[^']+)'"
    r".*?but current is (?:the value )?'?(?P<current>[a-z]+)'?"
)


@contextlib.asynccontextmanager
async def queue_types_checked(queue_type: str) -> AsyncIterator[None]:
    """Turn the broker's refusal to declare a queue of the other type (PRECONDITION_FAILED),
    wherever the service declares one, into a message that says what to do."""
    try:
        yield
    except aiormq.exceptions.ChannelPreconditionFailed as error:
        found = _INEQUIVALENT_TYPE.search(str(error))
        if found is None:
            raise
        current = "classic" if found["current"] == "none" else found["current"]
        raise QueueTypeMismatch(
            f"queue {found['queue']} is a {current} queue but [bus] queue_type is {queue_type}: "
            "a queue cannot change its type in place; stop every callbridge service, run "
            "`callbridge bus convert-queues`, then start them again"
        ) from None
