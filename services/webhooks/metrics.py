"""Prometheus figures of the webhooks service, on a registry of its own (no global state)."""

from prometheus_client import CollectorRegistry, Counter, Histogram


class WebhookMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._attempts = Counter(
            "callbridge_webhook_attempts",
            "Delivery attempts by outcome",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self._retries = Counter(
            "callbridge_webhook_retries",
            "Deliveries scheduled for another attempt",
            ["endpoint"],
            registry=self.registry,
        )
        self._dead = Counter(
            "callbridge_webhook_dead_letters",
            "Deliveries given up on and kept",
            ["endpoint"],
            registry=self.registry,
        )
        self._duplicates = Counter(
            "callbridge_webhook_duplicates",
            "Jobs skipped because a copy of them was handled already (an event sent twice)",
            ["endpoint"],
            registry=self.registry,
        )
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
