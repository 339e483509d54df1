"""The monitor's HTTP side: `/healthz`, `/readyz` (RabbitMQ and the PBX connected, the outbox writable), and
Prometheus `/metrics`. It listens on `[monitor] http_host`:`http_port` (127.0.0.1 by default)."""

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from shared.http_server import health_routes, metrics_response

from .metrics import MonitorMetrics


def create_app(metrics: MonitorMetrics, ready: Callable[[], bool]) -> FastAPI:
    app = FastAPI(title="callbridge monitor", description="Health and metrics of the monitor service")
    app.include_router(health_routes(ready, "not connected to RabbitMQ or to the PBX"))

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return metrics_response(metrics.registry)

    return app
