"""The API's ASGI middleware: read answers kept until the state changes, and the classic
`/webapi/{key}/{method}` paths."""

import asyncio
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as AsgiMessage

from shared.keys import Keys, bearer

CACHED_ANSWERS = 4096  # distinct read requests kept per state version


ReadRequest = tuple[str, tuple[tuple[str, str], ...]]  # a read method's path and its parameters
Answer = tuple[list[Any], bytes]  # the headers and body of its 200 answer


class CachedReads:
    """ASGI middleware: a read method's 200 answer is kept and sent again, without running the
    method, to any caller with a valid key, until the state changes (`version`). The methods
    themselves, their key check and their errors stay FastAPI's: a miss, an error and a missing
    or wrong key go through to it. With hundreds of calls in progress, `pbx.callsinfo.get` is
    built once per change instead of once per request (docs/benchmarks.md)."""

    def __init__(
        self, app: ASGIApp, keys: Keys, version: Callable[[], tuple[int, int]], paths: frozenset[str]
    ) -> None:
        self._app, self._keys, self._version, self._paths = app, keys, version, paths
        self._answers: dict[ReadRequest, Answer] = {}
        self._building: dict[ReadRequest, asyncio.Future[Answer | None]] = {}
        self._seen: tuple[int, int] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self._paths or scope["method"] != "GET":
            await self._app(scope, receive, send)
            return
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        if not self._authorized(scope, query):
            await self._app(scope, receive, send)  # FastAPI's key check answers
            return
        version = self._version()
        if version != self._seen:
            self._answers.clear()
            self._seen = version
        wanted = (scope["path"], tuple(sorted((k, v) for k, v in query if k != "key")))
        kept = await self._kept(wanted)
        if kept is not None:
            headers, body = kept
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await self._build(scope, receive, send, wanted, version)

    async def _kept(self, wanted: ReadRequest) -> Answer | None:
        """The answer kept for `wanted`, or the one someone is building right now; None: build it."""
        kept = self._answers.get(wanted)
        building = self._building.get(wanted)
        if kept is None and building is not None:
            kept = await asyncio.shield(building)
        return kept

    async def _build(
        self, scope: Scope, receive: Receive, send: Send, wanted: ReadRequest, version: tuple[int, int]
    ) -> None:
        """Let FastAPI answer, and keep a 200 answer while the state stays at `version`."""
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def keeping(message: AsgiMessage) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        built: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._building[wanted] = built
        answer: Answer | None = None
        try:
            await self._app(scope, receive, keeping)
            if start.get("status") == 200:
                answer = (list(start.get("headers", [])), b"".join(parts))
                if self._version() == version and len(self._answers) < CACHED_ANSWERS:
                    self._answers[wanted] = answer
        finally:
            if self._building.get(wanted) is built:
                del self._building[wanted]
            built.set_result(answer)  # waiters that get None build the answer themselves

    def _authorized(self, scope: Scope, query: list[tuple[str, str]]) -> bool:
        """Any valid key may read (the check itself is `Keys.access`, constant-time)."""
        offered = [v for k, v in query if k == "key"]
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                offered.append(value.decode("latin-1"))
            elif name == b"authorization" and (key := bearer(value.decode("latin-1"))):
                offered.append(key)
        return any([self._keys.access(key) is not None for key in offered])


class ClassicPaths:
    """ASGI middleware: the classic `/webapi/{key}/{method}` path, served as `/{method}` with the
    key as an `X-API-Key` header (integrators can keep their URLs)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/webapi/"):
            parts = scope["path"].split("/", 3)
            if len(parts) == 4 and parts[2] and parts[3]:
                headers = [(k, v) for k, v in scope["headers"] if k != b"x-api-key"]
                scope = {
                    **scope,
                    "path": "/" + parts[3],
                    "raw_path": ("/" + parts[3]).encode(),
                    "headers": [*headers, (b"x-api-key", parts[2].encode())],
                }
        await self._app(scope, receive, send)
