"""The webhooks service's HTTP side: health, Prometheus metrics, attempt log, dead letters,
endpoints' health (`endpoint_routes`).

It listens on `[webhooks] http_host`:`http_port` (127.0.0.1 by default). The attempt log and the
dead letters take the API's keys (`[api] keys`, `read_only_keys`: `shared.keys`): any key reads
them, a full key replays; with no key configured they answer 401 to everyone (the command
line, `callbridge webhooks`, still works on the host).
"""

from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import PlainTextResponse

from shared.clock import Clock
from shared.http_server import health_routes, metrics_response
from shared.keys import COMMAND, READ, Keys

from .admin import parse_since, replay_selected
from .endpoint_routes import endpoint_routes, iso
from .metrics import WebhookMetrics
from .ports import JobQueue
from .store import Attempt, DeadDelivery, DeliveryStore

Since = Annotated[str | None, Query(description="an ISO time, or a duration ago such as 2h")]
Endpoint = Annotated[str | None, Query(description="only this [webhook:NAME]")]
Chain = Annotated[str | None, Query(max_length=200, description="only this chain (or ordering scope)")]
Outcome = Annotated[str | None, Query(pattern="^(Delivered|Gone|Failed)$", description="only this outcome")]
DeadId = Annotated[int | None, Query(ge=1, description="only this dead letter")]
Limit = Annotated[int, Query(ge=1, le=1000, description="at most so many")]


def create_app(
    store: DeliveryStore,
    queue: JobQueue,
    metrics: WebhookMetrics,
    clock: Clock,
    keys: Keys,
    ready: Any = lambda: True,
) -> FastAPI:
    app = FastAPI(
        title="callbridge webhooks", description="Delivery log and dead letters of the webhooks service"
    )
    app.state.keys = keys

    def since_of(text: str | None) -> float:
        try:
            return parse_since(text, clock)
        except ValueError as error:
            raise HTTPException(422, str(error)) from None

    app.include_router(health_routes(ready))
    app.include_router(endpoint_routes(store, since_of))

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        return metrics_response(metrics.registry)

    @app.get("/attempts", dependencies=READ)
    async def attempts(
        endpoint: Endpoint = None,
        since: Since = None,
        limit: Limit = 100,
        chain: Chain = None,
        outcome: Outcome = None,
    ) -> list[dict[str, Any]]:
        rows = await store.attempts(
            endpoint=endpoint, since=since_of(since), limit=limit, chain=chain, outcome=outcome
        )
        return [_attempt(row) for row in rows]

    @app.get("/dead", dependencies=READ)
    async def dead(
        endpoint: Endpoint = None, since: Since = None, id: DeadId = None, limit: Limit = 500
    ) -> list[dict[str, Any]]:
        found = await store.dead(endpoint=endpoint, since=since_of(since), dead_id=id, limit=limit)
        return [_dead(d) for d in found]

    @app.post("/dead/replay", dependencies=COMMAND)
    async def replay_dead(
        endpoint: Endpoint = None, since: Since = None, id: DeadId = None
    ) -> dict[str, int]:
        """Replay the dead letters the filters select: one (`id`), or by endpoint and time, a
        batch at a time (memory stays bounded however many there are)."""
        sent = await replay_selected(
            store, queue, clock, endpoint=endpoint, since=since_of(since), dead_id=id
        )
        return {"replayed": sent}

    return app


def _dead(d: DeadDelivery) -> dict[str, Any]:
    fields = ("id", "endpoint", "event_type", "chain", "reason")
    return {"at": iso(d.at), **{name: getattr(d, name) for name in fields}}


def _attempt(row: Attempt) -> dict[str, Any]:
    fields = (
        "id",
        "endpoint",
        "event_id",
        "event_type",
        "chain",
        "attempt",
        "status",
        "outcome",
        "latency_ms",
        "response",
        "request",
    )
    return {"at": iso(row.at), **{name: getattr(row, name) for name in fields}}
