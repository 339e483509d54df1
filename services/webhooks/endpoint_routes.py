"""The webhooks service's admin routes about endpoints: each one's health (success rate, last
error, disabled or not) and switching a disabled one on again. Any key reads; enabling takes a
full key (`shared.keys`), as the dead letters' replay does."""

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query

from shared.keys import COMMAND, READ

from .store import DeliveryStore

Since = Annotated[str, Query(description="attempts since: an ISO time, or a duration ago such as 2h")]
Name = Annotated[str, Path(min_length=1, max_length=200, description="the [webhook:NAME]")]


def endpoint_routes(store: DeliveryStore, since_of: Callable[[str | None], float]) -> APIRouter:
    router = APIRouter()

    @router.get("/endpoints", dependencies=READ)
    async def endpoints(since: Since = "24h") -> list[dict[str, Any]]:
        """Every endpoint that had attempts since `since`, or is disabled."""
        disabled = await store.disabled()
        found: dict[str, dict[str, Any]] = {}
        for health in await store.health(since_of(since)):
            found[health.endpoint] = {
                "endpoint": health.endpoint,
                "attempts": health.attempts,
                "delivered": health.delivered,
                "success_rate": round(health.delivered / health.attempts, 4),
                "last_error_at": iso(health.last_error_at),
                "last_error": health.last_error,
            }
        for name in disabled.keys() - found.keys():
            found[name] = {"endpoint": name, "attempts": 0, "delivered": 0, "success_rate": None}
            found[name] |= {"last_error_at": None, "last_error": ""}
        return [
            {**entry, "disabled": name in disabled, "disabled_reason": disabled.get(name, "")}
            for name, entry in sorted(found.items())
        ]

    @router.post("/endpoints/{name}/enable", dependencies=COMMAND)
    async def enable(name: Name) -> dict[str, str]:
        """Switch a disabled endpoint on again (its dead letters stay: replay them)."""
        if name not in await store.disabled():
            raise HTTPException(404, f"endpoint {name} is not disabled")
        await store.enable(name)
        return {"enabled": name}

    return router


def iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat()
