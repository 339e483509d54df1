"""Delivery jobs: one per (endpoint, event), ordered per (endpoint, call chain).

A shard queue's event becomes its jobs (`Intake`); a job that must wait travels as JSON through
the webhooks service's own queues: retry queues, back to its chain's shard queue, into the dead
letters. `job_id` is stable across retries; `attempt` counts the attempts already made.
"""

from collections.abc import Awaitable, Callable, Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.event_base import Event
from shared.events import Message, RecordingReady, encode_event, ordering_scope, parse_event
from shared.routing import topic_matches
from shared.settings import EndpointSettings

from .classic import classic_payload
from .templates import types_of


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["deliver", "release"] = "deliver"
    endpoint: str
    key: str
    event: str = ""  # the event's JSON, exactly as it came off the bus
    event_id: str = ""
    event_type: str = ""
    chain: str = ""  # the ordering scope (shared.events.ordering_scope): it picks the shard
    attempt: int = 0
    blocker: str = ""  # release jobs: the blocker whose turn is over
    replayed: bool = False  # a dead letter sent again on purpose: not a duplicate

    @property
    def job_id(self) -> str:
        return f"{self.endpoint}/{self.event_id}"

    def message(self) -> Message:
        return parse_event(self.event.encode())


class JobBatch(BaseModel):
    """What travels on the job queues: a shard's jobs in order (one, for a retry)."""

    model_config = ConfigDict(frozen=True)

    jobs: tuple[Job, ...]


def wanted(endpoint: EndpointSettings, event: Event) -> bool:
    if not endpoint.enabled or not any(topic_matches(pattern, event.type) for pattern in endpoint.events):
        return False
    if endpoint.templated:
        return event.type in types_of(endpoint.format, endpoint.templates)
    return (
        endpoint.format != "classic"
        or isinstance(event, RecordingReady)
        or classic_payload(event) is not None
    )


def jobs_for(event: Message, body: str, endpoints: Mapping[str, EndpointSettings]) -> list[Job]:
    scope = ordering_scope(event)
    return [
        Job(
            endpoint=name,
            key=f"{name}|{scope}",
            event=body,
            event_id=str(event.event_id),
            event_type=event.type,
            chain=scope,
        )
        for name, endpoint in endpoints.items()
        if wanted(endpoint, event)
    ]


class Intake:
    """Events → their jobs, one per endpoint that wants the event, each handed in order to
    `sink`: the dispatcher (a shard queue's consumer), or the in-memory job queue."""

    def __init__(
        self, endpoints: Mapping[str, EndpointSettings], sink: Callable[[Job], Awaitable[None]]
    ) -> None:
        self._endpoints = endpoints
        self._sink = sink

    async def __call__(self, event: Message) -> None:
        for job in jobs_for(event, encode_event(event).decode(), self._endpoints):
            await self._sink(job)
