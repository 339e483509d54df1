"""The webhooks service's admin routes, reached through the api for the dashboard: the page
talks to the api's origin only, and the webhooks service's port stays closed to browsers.

The api checks the key first (any key reads, a full key replays or enables) and forwards it, so
the webhooks service checks it again; only the filters the admin routes know are passed on.
"""

import logging
from typing import Annotated
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Depends, HTTPException, Request, Response

from shared.keys import COMMAND, READ, bearer

logger = logging.getLogger(__name__)

FILTERS = frozenset({"endpoint", "since", "limit", "chain", "outcome", "id"})


class WebhooksAdmin:
    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self._base_url, self._http = base_url, http

    async def forward(self, request: Request, method: str, path: str) -> Response:
        params = {k: v for k, v in request.query_params.items() if k in FILTERS}
        try:
            answer = await self._http.request(
                method, self._base_url + path, params=params, headers={"X-API-Key": offered_key(request)}
            )
        except httpx.HTTPError as error:
            logger.warning("webhooks admin at %s did not answer: %s", self._base_url, type(error).__name__)
            raise HTTPException(502, "the webhooks service did not answer") from None
        media = answer.headers.get("content-type", "application/json")
        return Response(answer.content, status_code=answer.status_code, media_type=media)


def offered_key(request: Request) -> str:
    """The key the caller offered (checked already by the route's dependency)."""
    return (
        request.headers.get("x-api-key")
        or bearer(request.headers.get("authorization"))
        or request.query_params.get("key", "")
    )


def admin(request: Request) -> WebhooksAdmin:
    found: WebhooksAdmin = request.app.state.webhooks_admin
    return found


Admin = Annotated[WebhooksAdmin, Depends(admin)]
router = APIRouter(prefix="/ui/api/webhooks", include_in_schema=False)


@router.get("/attempts", dependencies=READ)
async def attempts(request: Request, to: Admin) -> Response:
    return await to.forward(request, "GET", "/attempts")


@router.get("/dead", dependencies=READ)
async def dead(request: Request, to: Admin) -> Response:
    return await to.forward(request, "GET", "/dead")


@router.post("/dead/replay", dependencies=COMMAND)
async def replay(request: Request, to: Admin) -> Response:
    return await to.forward(request, "POST", "/dead/replay")


@router.get("/endpoints", dependencies=READ)
async def endpoints(request: Request, to: Admin) -> Response:
    return await to.forward(request, "GET", "/endpoints")


@router.post("/endpoints/{name}/enable", dependencies=COMMAND)
async def enable(name: str, request: Request, to: Admin) -> Response:
    return await to.forward(request, "POST", f"/endpoints/{quote(name, safe='')}/enable")
