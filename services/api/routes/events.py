"""The live event stream (Server-Sent Events)."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.sse import EventSourceResponse, ServerSentEvent

from shared.keys import READ

from ..deps import READ_ERRORS, Wired

router = APIRouter(tags=["events"], dependencies=READ, responses=READ_ERRORS)
Types = Annotated[
    str,
    Query(
        max_length=500,
        description="comma-separated event types or topic patterns (`call.*`, `extension.#`); all by default",
    ),
]


@router.get("/events", response_class=EventSourceResponse)
async def events(wired: Wired, types: Types = "#") -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: each bus event as it happens (`event:` its type, `id:` its
    event_id, `data:` the event's JSON). A client that falls too far behind is sent an
    `overflow` event and cut off; reconnect to go on."""
    patterns = [p.strip() for p in types.split(",") if p.strip()] or ["#"]
    async with wired.stream.listen(patterns) as listener:
        yield ServerSentEvent(comment="callbridge events")
        while True:
            item = await listener.inbox.get()
            if item is None:
                yield ServerSentEvent(event="overflow", data={"error": "this client fell too far behind"})
                return
            event, body = item
            yield ServerSentEvent(raw_data=body, event=event.type, id=str(event.event_id))
