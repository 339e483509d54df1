"""The live event stream behind `GET /events`: every bus event, fanned out to each listener.

Each listener has a bounded buffer; one that falls `stream_buffer` events behind is cut off
(its stream ends with an `overflow` event) rather than slowing the API or growing its memory.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from shared.event_base import Event
from shared.events import encode_event
from shared.routing import topic_matches

# internal to the recordings service: nothing a listener can use
HIDDEN = frozenset({"recording.converted"})


@dataclass(eq=False)
class Listener:
    patterns: Sequence[str]
    inbox: asyncio.Queue[tuple[Event, str] | None] = field(default_factory=asyncio.Queue)
    overflowed: bool = False

    def wants(self, event_type: str) -> bool:
        return any(topic_matches(pattern, event_type) for pattern in self.patterns)


class EventStream:
    def __init__(self, buffer: int) -> None:
        self._buffer = buffer
        self._listeners: set[Listener] = set()

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    async def handle(self, event: Event) -> None:
        """The bus handler: hand `event` to every listener that wants it."""
        if event.type in HIDDEN or not self._listeners:
            return
        body = encode_event(event).decode()
        for listener in self._listeners:
            if listener.overflowed or not listener.wants(event.type):
                continue
            if listener.inbox.qsize() >= self._buffer:
                listener.overflowed = True
                listener.inbox.put_nowait(None)
            else:
                listener.inbox.put_nowait((event, body))

    @contextlib.asynccontextmanager
    async def listen(self, patterns: Sequence[str]) -> AsyncIterator[Listener]:
        listener = Listener(tuple(patterns))
        self._listeners.add(listener)
        try:
            yield listener
        finally:
            self._listeners.discard(listener)
