"""Delivery jobs: one per (endpoint, event), ordered per (endpoint, call chain). Pure.

A job travels as JSON through the webhooks service's own queues: from the intake to the shard
queue of its ordering key, through retry queues, into the dead letters. `job_id` is stable
across retries; `attempt` counts the attempts already made.
"""

import hashlib
from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from shared.events import CallEvent, Event, ExtensionEvent, Message, RecordingReady, parse_event
from shared.routing import topic_matches
from shared.settings import EndpointSettings

from .classic import classic_payload


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["deliver", "release"] = "deliver"
    endpoint: str
    key: str
    event: str = ""  # the event's JSON, exactly as it came off the bus
    event_id: str = ""
    event_type: str = ""
    chain: str = ""
    attempt: int = 0
    blocker: str = ""  # release jobs: the blocker whose turn is over

    @property
    def job_id(self) -> str:
        return f"{self.endpoint}/{self.event_id}"

    def message(self) -> Message:
        return parse_event(self.event.encode())


class JobBatch(BaseModel):
    """What travels on the job queues: a shard's jobs in order (one, for a retry)."""

    model_config = ConfigDict(frozen=True)

    jobs: tuple[Job, ...]


def ordering_scope(event: Event) -> str:
    """What a receiver must see in order: a call chain, an extension's state, or the event type."""
    if isinstance(event, CallEvent):
        return event.chain_id
    if isinstance(event, ExtensionEvent):
        return f"extension:{event.extension}"
    return event.type


def shard_of(key: str, shards: int) -> int:
    """A stable hash (not Python's per-process `hash`), so that every replica agrees."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % shards


def wanted(endpoint: EndpointSettings, event: Event) -> bool:
    if not endpoint.enabled or not any(topic_matches(pattern, event.type) for pattern in endpoint.events):
        return False
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
