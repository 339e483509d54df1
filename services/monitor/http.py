"""The monitor's HTTP side: `/healthz`, `/readyz` (connected to RabbitMQ and to the PBX), and
Prometheus `/metrics`. It listens on `[monitor] http_host`:`http_port` (127.0.0.1 by default)."""

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.http_server import health_routes, metrics_response


class MonitorMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "callbridge_monitor_pbx_updates", "Updates read from the PBX driver", registry=self.registry
        )
        self.events = Counter(
            "callbridge_monitor_events_published",
            "Events published, by type",
            ["type"],
            registry=self.registry,
        )
        self.seq = Gauge(
            "callbridge_monitor_seq", "The sequence number of the last event made", registry=self.registry
        )
        self.calls = Gauge("callbridge_monitor_calls", "Calls in progress", registry=self.registry)
        self.commands = Counter(
            "callbridge_monitor_commands",
            "Commands carried out, by outcome",
            ["outcome"],
            registry=self.registry,
        )


def create_app(metrics: MonitorMetrics, ready: Callable[[], bool]) -> FastAPI:
    app = FastAPI(title="callbridge monitor", description="Health and metrics of the monitor service")
    app.include_router(health_routes(ready, "not connected to RabbitMQ or to the PBX"))

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return metrics_response(metrics.registry)

    return app
