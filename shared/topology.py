"""The bus's names and routing rules: what every publisher and every consumer must agree on.

    monitor, recordings, webhooks ──publish──▶ [callbridge.events]  (durable topic exchange)
       routing key = the event type; an event the webhooks service wants (WEBHOOKS_BINDINGS)
       also carries the routing key `shard.<n>` in its CC header: n = hash(ordering scope) % SHARDS
    monitor ──publish──▶ [callbridge.batches]  (durable fanout exchange)
       the monitor's events once more, many to a message (`pbx.batch`), for the api replicas
       (each takes every event) and the recordings ledger (a few of every call's): a message an
       event would cost the broker and them far more; an exchange of their own, so that a queue
       bound to `#` on the events still gets each event once
    a message a consumer rejects (it cannot be parsed, or its handler failed)
       ──▶ [callbridge.dead] (fanout) ──▶ callbridge.dead (durable)

Each service declares the queues it consumes and binds them: the webhooks service its shard
queues (`services/webhooks/shards.py`), the recordings service `callbridge.recordings`, each api
replica its own exclusive queue. The exchange name is configurable (`[bus] exchange`); every
other name derives from it, so a test can run a whole private topology under a unique prefix.
"""

import hashlib
from dataclasses import dataclass
from typing import Any

from .event_base import Event
from .events import BATCH_KEY, ordering_scope
from .routing import topic_matches
from .settings import BusSettings
from .values import QueueType

DEFAULT_EXCHANGE = "callbridge"
# Call chains are spread over this many ordered webhook delivery queues. Fixed: every publisher
# must agree with the webhooks service, and moving a chain to another queue mid-call could
# reorder its webhooks.
SHARDS = 64


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str = DEFAULT_EXCHANGE
    queue_type: QueueType = "classic"  # [bus] queue_type: what every durable queue is declared as

    @classmethod
    def of(cls, bus: BusSettings) -> "Topology":
        """The names and queue type that `[bus]` configures."""
        return cls(bus.exchange, bus.queue_type)

    def durable(self, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
        """The arguments of a durable queue: `arguments`, and for a quorum queue its type and
        at-least-once dead-lettering (a message on its way to the dead-letter exchange, or from a
        retry queue back to its shard, survives a node's failure). Exclusive and auto-deleted
        queues stay classic: they live and die with one connection."""
        declared = dict(arguments or {})
        if self.queue_type == "quorum":
            declared["x-queue-type"] = "quorum"
            if "x-dead-letter-exchange" in declared:
                declared |= {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        return declared

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def batches_exchange(self) -> str:
        return f"{self.prefix}.batches"

    def exchange_for(self, routing_key: str) -> str:
        """Where a message of `routing_key` goes, and a queue binds for it: the batches' exchange
        for `pbx.batch`, the events' for any other."""
        return self.batches_exchange if routing_key == BATCH_KEY else self.events_exchange

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead"

    def queue(self, name: str) -> str:
        """The full name of a service's queue, e.g. `callbridge.recordings`."""
        return f"{self.prefix}.{name}"

    def shard_of(self, scope: str) -> int:
        """The shard of an ordering scope (`shared.events.ordering_scope`): a stable hash, not
        Python's per-process `hash`, so that every process agrees."""
        return int.from_bytes(hashlib.blake2b(scope.encode(), digest_size=8).digest(), "big") % SHARDS

    def routing_keys(self, event: Event) -> list[str]:
        """Where `event` goes: its type, and for an event the webhooks service wants, its shard."""
        if wanted_by_webhooks(event.type):
            return [event.type, shard_key(self.shard_of(ordering_scope(event)))]
        return [event.type]


def shard_key(shard: int) -> str:
    """The extra routing key (in the CC header) that takes an event to its shard queue."""
    return f"shard.{shard}"


def wanted_by_webhooks(event_type: str) -> bool:
    return any(topic_matches(pattern, event_type) for pattern in WEBHOOKS_BINDINGS)


WEBHOOKS_BINDINGS = ("call.#", "recording.ready", "recording.failed", "webhooks.#")
# the recordings ledger takes the monitor's events in its batches too, and of them only these
RECORDINGS_TAKES = frozenset({"call.answered", "call.ended", "pbx.directory", "recording.converted"})
RECORDINGS_BINDINGS = (BATCH_KEY, "recording.converted")
# earlier versions' bindings, taken off at start: every call event (before 2026-12), then the
# ledger's three one by one (before the batches)
RECORDINGS_RETIRED = ("call.#", "call.answered", "call.ended", "pbx.directory")
# the monitor's events in its batches (each alone too, for the services that take a few kinds),
# the other services' own
API_BINDINGS = (BATCH_KEY, "recording.#", "webhooks.#")
