"""Health and metrics (no key)."""

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from shared.http_server import metrics_response

from ..deps import Wired

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus(wired: Wired) -> PlainTextResponse:
    """Prometheus metrics: requests and their latency per method, cache and stream figures."""
    metrics, cache = wired.metrics, wired.cache
    metrics.listeners.set(wired.stream.listeners)
    metrics.cache_seq.set(cache.seq)
    metrics.snapshots.set(cache.snapshots)
    return metrics_response(metrics.registry)
