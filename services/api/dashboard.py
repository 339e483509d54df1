"""The operator's dashboard at `/ui/`: static pages (shipped in `ui/`, no key needed: they hold
no data) and the JSON they read, every route behind the API's keys. The page keeps the key in
the browser's session storage and sends it as `X-API-Key`, never in a URL.

- `GET /ui/api/whoami`: which rights the key has (`read` or `full`), so the page shows only the
  controls it may use (the server refuses changes from read-only keys anyway: 403).
- `GET /ui/api/live`: calls in progress, queues, extensions (`live.py`); the page reads it again
  when the event stream (`GET /events`, fetched with the key header) says something changed.
- `GET /ui/api/chains`: the recent chains (`chains.py`), with their recordings.
- `/ui/api/webhooks/…`: the webhooks service's admin routes (`admin_proxy.py`).
"""

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response
from starlette.types import Scope

from shared.clock import SystemClock
from shared.keys import READ, Access

from . import admin_proxy
from .admin_proxy import WebhooksAdmin
from .cache import StateCache
from .chains import RecentChains
from .live import QueueDay, live_view

PAGES = Path(__file__).parent / "ui"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' https: http:; img-src 'self' data:;"
    " frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
Text = Annotated[str, Query(max_length=100)]


def mount_dashboard(app: FastAPI, chains: RecentChains, day: QueueDay, webhooks: WebhooksAdmin) -> None:
    app.state.webhooks_admin = webhooks
    app.include_router(_routes(chains, day))
    app.include_router(admin_proxy.router)
    app.mount("/ui", _Pages(directory=PAGES, html=True), name="ui")


class _Pages(StaticFiles):
    """The page's own files, with a policy that lets it load nothing but itself (and play the
    recordings, which the recordings service serves from its own address)."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(PAGE_HEADERS)
        return response


def _routes(chains: RecentChains, day: QueueDay) -> APIRouter:
    router = APIRouter(prefix="/ui/api", dependencies=READ, include_in_schema=False)
    clock = SystemClock()

    @router.get("/whoami")
    async def whoami(request: Request) -> dict[str, Literal["read", "full"]]:
        return {"rights": "full" if request.state.access is Access.COMMAND else "read"}

    @router.get("/live")
    async def live(request: Request) -> dict[str, Any]:
        cache: StateCache = request.app.state.wiring.cache
        if not cache.ready:
            raise HTTPException(503, "the PBX state is not loaded yet: the monitor has not answered")
        return live_view(cache.state, day, clock.now())

    @router.get("/chains")
    async def recent(
        caller: Text = "",
        extension: Text = "",
        chain: Text = "",
        day: Annotated[date | None, Query(alias="date")] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[dict[str, Any]]:
        found = chains.search(caller=caller, extension=extension, chain_id=chain, day=day, limit=limit)
        return [c.as_json() for c in found]

    return router
