"""Serving the archive: `GET /webapi/recording/{name}.mp3?expires=…&token=…` (range requests work).

404 for a name that is not an archive name or not there; 403 for a missing, wrong or expired
token. The name is checked against the archive's own pattern and the path is built from it, so
no request can reach outside the archive. This server may face the internet (a CRM fetches the
links): it has no /docs, and answers /metrics to clients of `metrics_from` only.
"""

from collections.abc import Callable
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse
from prometheus_client import CollectorRegistry
from pydantic import IPvAnyNetwork

from shared.clock import Clock
from shared.http_server import health_routes, metrics_response

from .naming import archive_path, is_archive_name
from .service import day_of
from .tokens import check


def create_app(
    archive: Path,
    secret: bytes,
    clock: Clock,
    ready: Callable[[], bool] = lambda: True,
    metrics: CollectorRegistry | None = None,
    metrics_from: tuple[IPvAnyNetwork, ...] = (),
) -> FastAPI:
    app = FastAPI(title="callbridge recordings", docs_url=None, redoc_url=None, openapi_url=None)
    registry = metrics or CollectorRegistry()

    app.include_router(health_routes(ready))

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(request: Request) -> PlainTextResponse:
        """Prometheus figures: conversions done and failed by this replica."""
        client = ip_address(request.client.host) if request.client else None
        if client is None or not any(client in network for network in metrics_from):
            raise HTTPException(403, "/metrics is served to the networks of [recordings] metrics_from only")
        return metrics_response(registry)

    @app.get(
        "/webapi/recording/{name}",
        response_class=FileResponse,
        responses={200: {"content": {"audio/mpeg": {}}}, 403: {}, 404: {}},
    )
    async def recording(
        name: str, expires: Annotated[int, Query()] = 0, token: Annotated[str, Query()] = ""
    ) -> FileResponse:
        if not is_archive_name(name):
            raise HTTPException(404, "no such recording")
        if not check(secret, name, expires, token, clock.now().timestamp()):
            raise HTTPException(403, "the link's token is wrong or has expired")
        path = archive_path(archive, day_of(name), name)
        if not path.is_file():
            raise HTTPException(404, "no such recording")
        return FileResponse(path, media_type="audio/mpeg", filename=name)

    return app
