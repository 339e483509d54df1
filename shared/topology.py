"""Exchange and queue names, and who binds what.

    monitor, recordings, webhooks ──publish──▶ [callbridge.events]  (durable topic exchange)
       routing key = the event type; an event the webhooks service wants (WEBHOOKS_BINDINGS)
       also carries the routing key `shard.<n>` in its CC header: n = hash(ordering scope) % shards
                 │
                 ├─ shard.0 … shard.<shards-1> ──▶ callbridge.webhooks.shard.<n>  (durable, one
                 │      active consumer each; the webhooks service: services/webhooks/queues.py)
                 ├─ call.#, pbx.directory, recording.converted ──▶ callbridge.recordings (durable,
                 │      one active consumer)
                 └─ # ──▶ callbridge.api.<uuid> (exclusive, one per api replica: its cache)

    [callbridge.webhooks.shards] (durable headers exchange, header `shard` = n) ──▶ the same
       shard queues: delivery jobs the webhooks service sends itself (retries, releases, replays)
    a message that cannot be parsed or handled ──reject──▶ [callbridge.dead] ──▶ callbridge.dead

Everyone who connects declares the shard queues and the recordings queue, so that events
published before a consumer ever started are kept. The exchange name is configurable (`[bus]
exchange`); every other name derives from it, so a test can run a whole private topology under
a unique prefix.
"""

import hashlib
from dataclasses import dataclass

from .routing import topic_matches

DEFAULT_EXCHANGE = "callbridge"
# Call chains are spread over this many ordered webhook delivery queues. Fixed: every publisher
# must agree with the webhooks service, and moving a chain to another queue mid-call could
# reorder its webhooks.
SHARDS = 64


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str = DEFAULT_EXCHANGE

    @property
    def shards(self) -> int:
        return SHARDS

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def shards_exchange(self) -> str:
        return f"{self.prefix}.webhooks.shards"

    def queue(self, name: str) -> str:
        """The full name of a service's queue, e.g. `callbridge.recordings`."""
        return f"{self.prefix}.{name}"

    def shard_queue(self, shard: int) -> str:
        return self.queue(f"webhooks.shard.{shard}")

    def shard_of(self, scope: str) -> int:
        """The shard of an ordering scope (`shared.events.ordering_scope`): a stable hash, not
        Python's per-process `hash`, so that every process agrees."""
        return int.from_bytes(hashlib.blake2b(scope.encode(), digest_size=8).digest(), "big") % self.shards


def shard_key(shard: int) -> str:
    """The extra routing key (in the CC header) that takes an event to its shard queue."""
    return f"shard.{shard}"


def wanted_by_webhooks(event_type: str) -> bool:
    return any(topic_matches(pattern, event_type) for pattern in WEBHOOKS_BINDINGS)


WEBHOOKS_BINDINGS = ("call.#", "recording.ready", "recording.failed", "webhooks.#")
RECORDINGS_BINDINGS = ("call.#", "pbx.directory", "recording.converted")
API_BINDINGS = ("#",)

# The durable queues every connection declares (role → bindings, arguments); the webhooks shard
# queues are declared beside them. The recordings queue has one active consumer at a time
# because one process keeps the ledger of links and files.
SERVICE_QUEUES: dict[str, tuple[tuple[str, ...], dict[str, bool]]] = {
    "recordings": (RECORDINGS_BINDINGS, {"x-single-active-consumer": True}),
}
# Where the webhooks service took in events before they went straight to the shard queues: a
# service that finds it unbinds it, delivers what it holds and deletes it (services/webhooks/queues.py).
LEGACY_WEBHOOKS_QUEUE = "webhooks"
