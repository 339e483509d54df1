"""Prometheus figures of the webhooks service, on a registry of its own (no global state)."""

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()

        def counter(name: str, text: str, *labels: str) -> Counter:
            return Counter(f"callbridge_webhook_{name}", text, ["endpoint", *labels], registry=self.registry)

        self._attempts = counter("attempts", "Delivery attempts by outcome", "outcome")
        self._retries = counter("retries", "Deliveries scheduled for another attempt")
        self._dead = counter("dead_letters", "Deliveries given up on and kept")
        duplicates = "Jobs skipped because a copy of them was handled already (an event sent twice)"
        self._duplicates = counter("duplicates", duplicates)
        self._latency = Histogram(
            "callbridge_webhook_latency_seconds",
            "HTTP latency of delivery attempts",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15),
        )

    def attempted(self, endpoint: str, outcome: str, seconds: float) -> None:
        self._attempts.labels(endpoint, outcome).inc()
        self._latency.labels(endpoint).observe(seconds)

    def retried(self, endpoint: str) -> None:
        self._retries.labels(endpoint).inc()

    def dead_lettered(self, endpoint: str) -> None:
        self._dead.labels(endpoint).inc()

    def duplicate(self, endpoint: str) -> None:
        self._duplicates.labels(endpoint).inc()


class ReplicaCollector(Collector):
    """How the shards are shared, as this replica sees it (RabbitMQ only): the replicas alive
    and the shards it consumes. Across replicas the shards owned add up to 64 once they agree."""

    def __init__(self, replicas: Callable[[], int], owned: Callable[[], int]) -> None:
        self._replicas = replicas
        self._owned = owned

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "callbridge_webhooks_replicas", "Webhooks replicas alive, as this one hears", self._replicas()
        )
        yield GaugeMetricFamily(
            "callbridge_webhooks_shards_owned", "Shard queues this replica consumes", self._owned()
        )
