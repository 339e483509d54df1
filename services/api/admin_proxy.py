"""The webhooks service's admin routes, reached through the api for the dashboard: the page
talks to the api's origin only, and the webhooks service's port stays closed to browsers.

The api checks the key first (any key reads, a full key replays or enables) and forwards it, so
the webhooks service checks it again; only the filters the admin routes know are passed on.
"""

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse

from shared.keys import COMMAND, READ

logger = logging.getLogger(__name__)

FILTERS = frozenset({"endpoint", "since", "limit", "chain", "outcome", "id"})


class WebhooksAdmin:
    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self._base_url, self._http = base_url, http

    async def forward(self, request: Request, method: str, path: str) -> Response:
        params = {k: v for k, v in request.query_params.items() if k in FILTERS}
        key = request.state.offered  # the key the route's dependency accepted
        try:
            answer = await self._http.request(
                method, self._base_url + path, params=params, headers={"X-API-Key": key}
            )
        except httpx.HTTPError as error:
            logger.warning("webhooks admin at %s did not answer: %s", self._base_url, type(error).__name__)
            raise HTTPException(502, "the webhooks service did not answer") from None
        if answer.status_code in (401, 403):  # the api took the key: the two disagree on the keys
            logger.warning(
                "webhooks admin at %s refused a key the api accepts (%d)", self._base_url, answer.status_code
            )
            raise HTTPException(502, "the webhooks service refused the key: give it the same [api] keys")
        json_error = answer.status_code >= 400 and answer.headers.get("content-type") == "application/json"
        document = answer.json() if json_error else None
        if isinstance(document, dict) and "detail" in document:  # FastAPI's error, as the api's
            return JSONResponse({"error": str(document["detail"])}, status_code=answer.status_code)
        return Response(
            answer.content, status_code=answer.status_code, media_type=answer.headers.get("content-type")
        )


def admin(request: Request) -> WebhooksAdmin:
    found: WebhooksAdmin = request.app.state.webhooks_admin
    return found


Admin = Annotated[WebhooksAdmin, Depends(admin)]
router = APIRouter(prefix="/ui/api/webhooks", include_in_schema=False)


ROUTES = (  # what the page may reach, with the key it needs: any reads, a full one changes
    ("GET", "/attempts", READ),
    ("GET", "/dead", READ),
    ("POST", "/dead/replay", COMMAND),
    ("GET", "/endpoints", READ),
)


def _forwarding(method: str, path: str) -> Callable[..., Awaitable[Response]]:
    async def forward(request: Request, to: Admin) -> Response:
        return await to.forward(request, method, path)

    return forward


for method, path, needed in ROUTES:
    router.add_api_route(path, _forwarding(method, path), methods=[method], dependencies=needed)


@router.post("/endpoints/{name}/enable", dependencies=COMMAND)
async def enable(
    name: Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]+$")], request: Request, to: Admin
) -> Response:
    return await to.forward(request, "POST", f"/endpoints/{quote(name, safe='')}/enable")
