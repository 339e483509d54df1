"""Prometheus figures of the API, on a registry of its own, and the ASGI middleware that measures."""

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._requests = Counter(
            "callbridge_api_requests",
            "Requests by method and status",
            ["method", "status"],
            registry=self.registry,
        )
        self._latency = Histogram(
            "callbridge_api_latency_seconds",
            "Time to answer, by method",
            ["method"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
        )
        self.events = Counter("callbridge_api_events", "Bus events consumed", registry=self.registry)
        self.listeners = Gauge(
            "callbridge_api_stream_listeners", "Open /events streams", registry=self.registry
        )
        self.cache_seq = Gauge(
            "callbridge_api_cache_seq", "The monitor's last event held by the cache", registry=self.registry
        )
        self.snapshots = Gauge(
            "callbridge_api_snapshots",
            "Snapshots loaded (the first, then one per gap)",
            registry=self.registry,
        )

    def observe(self, method: str, status: int, seconds: float) -> None:
        self._requests.labels(method, str(status)).inc()
        self._latency.labels(method).observe(seconds)


class Measured:
    """Counts and times each request under its method's path (`other` for unknown paths, so a
    scanner cannot blow up the label set); the event stream is counted, not timed."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, paths: frozenset[str]) -> None:
        self._app, self._metrics, self._paths = app, metrics, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            path = scope["path"] if scope["path"] in self._paths else "other"
            self._metrics.observe(path, status, time.perf_counter() - began)
