"""uvicorn inside a service's own event loop (the service, not uvicorn, handles signals)."""

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import uvicorn
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


def health_routes(ready: Callable[[], bool], unready: str = "not connected to RabbitMQ") -> APIRouter:
    """`/healthz` (the process answers) and `/readyz` (503 with `unready` while `ready()` is false)."""
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @router.get("/readyz")
    async def readyz() -> dict[str, str]:
        if not ready():
            raise HTTPException(503, unready)
        return {"status": "ready"}

    return router


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that nothing listens on right now (local servers, tests, benches)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def metrics_response(registry: CollectorRegistry) -> PlainTextResponse:
    """A service's Prometheus figures, in the text format."""
    return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


class EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(
    app: FastAPI, host: str, port: int, *, cert: Path | None = None, key: Path | None = None
) -> AsyncIterator[EmbeddedServer | None]:
    """Serve `app` (HTTPS with `cert` and `key`) while the block runs; nothing when `port` is 0."""
    if not port:
        yield None
        return
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None,
    )
    for path in (cert, key):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"HTTPS for {host}:{port}: no such file {path}")
    server = EmbeddedServer(config)
    listening = _bind(host, port)  # ours, so that a port taken is an OSError here (uvicorn would exit)
    task = asyncio.create_task(server.serve(sockets=[listening]))
    async with asyncio.timeout(30):  # uvicorn signals nothing when it listens: watch its flag
        while not server.started:
            if task.done():
                _startup_failure(task, host, port)
            await asyncio.sleep(0.01)
    try:
        yield server
    finally:
        server.should_exit = True
        await task


def _startup_failure(task: "asyncio.Task[None]", host: str, port: int) -> None:
    task.result()  # it failed to start (a bad certificate): say why
    raise OSError(f"the HTTP server on {host}:{port} stopped while starting")


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        listening = socket.socket(family, kind, protocol)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError as error:
        raise OSError(f"cannot serve HTTP on {host}:{port}: {error.strerror or error}") from None
    return listening
