"""AMQP topic matching, as RabbitMQ does it, for the in-memory bus.

Words are separated by dots; `*` matches exactly one word and `#` zero or more words, so
`call.ringing.#` matches `call.ringing`. The bus contract tests check this against RabbitMQ.
"""

from functools import lru_cache

from .events import BATCH_KEY


def delivered(binding: str, routing_key: str) -> bool:
    """Whether a queue bound with `binding` gets a message of `routing_key` (the in-memory bus):
    the monitor's batches go by an exchange of their own, which a queue binds by their name
    (`shared.topology`)."""
    if BATCH_KEY in (binding, routing_key):
        return binding == routing_key
    return topic_matches(binding, routing_key)


@lru_cache(maxsize=4096)
def topic_matches(pattern: str, routing_key: str) -> bool:
    return _match(tuple(pattern.split(".")), tuple(routing_key.split(".")))


def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(_match(rest, words[skip:]) for skip in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])
