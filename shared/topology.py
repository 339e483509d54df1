"""Exchange and queue names, and who binds what.

    monitor ──publish(type as routing key)──▶ [callbridge.events]  (durable topic exchange)
                                                 │  call.#, recording.#, extension.#, pbx.#, webhooks.#
                ┌────────────────────────────────┼─────────────────────────────┐
                ▼                                ▼                             ▼
     callbridge.webhooks (durable,     callbridge.recordings (durable,   callbridge.api.<uuid>
     one active consumer; jobs         one active consumer)              (exclusive, one per
     fan out to ordered shard queues,                                    api replica: its cache)
     services/webhooks/queues.py)
    a message that cannot be parsed or handled ──reject──▶ [callbridge.dead] ──▶ callbridge.dead

The exchange name is configurable (`[bus] exchange`); every other name derives from it, so a
test can run a whole private topology under a unique prefix.
"""

from dataclasses import dataclass

DEFAULT_EXCHANGE = "callbridge"


@dataclass(frozen=True, slots=True)
class Topology:
    prefix: str = DEFAULT_EXCHANGE

    @property
    def events_exchange(self) -> str:
        return f"{self.prefix}.events"

    @property
    def dead_exchange(self) -> str:
        return f"{self.prefix}.dead"

    @property
    def dead_queue(self) -> str:
        return f"{self.prefix}.dead"

    def queue(self, name: str) -> str:
        """The full name of a service's queue, e.g. `callbridge.webhooks`."""
        return f"{self.prefix}.{name}"


WEBHOOKS_BINDINGS = ("call.#", "recording.ready", "recording.failed", "webhooks.#")
RECORDINGS_BINDINGS = ("call.#", "pbx.directory", "recording.converted")
API_BINDINGS = ("#",)

# The durable queues every connection declares (role → bindings, arguments). Each has one active
# consumer at a time: the webhooks intake so that call events enter delivery in publish order, the
# recordings service because one process keeps the ledger of links and files.
SERVICE_QUEUES: dict[str, tuple[tuple[str, ...], dict[str, bool]]] = {
    "webhooks": (WEBHOOKS_BINDINGS, {"x-single-active-consumer": True}),
    "recordings": (RECORDINGS_BINDINGS, {"x-single-active-consumer": True}),
}
