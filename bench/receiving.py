"""The benches' webhook receiver: an ASGI app of the bench's own, served by uvicorn (httptools,
uvloop) in a process of its own, read and answered through these helpers."""

from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body"):
            return body


async def respond(send: Send, body: bytes) -> None:
    """200 with `body`."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def serve(app: Callable[..., Awaitable[None]], port: int, ready: Any) -> None:
    """Serve `app` on 127.0.0.1:`port` until the process ends; `ready` (a multiprocessing event)
    is set once it is about to listen."""
    import uvicorn

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="httptools",
        loop="uvloop",
    )
    ready.set()
    uvicorn.Server(config).run()
