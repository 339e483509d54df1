"""A real HTTP receiver on 127.0.0.1 for delivery tests: records requests, answers from a script.

It runs on the test's own event loop (asyncio streams, HTTP/1.1 with keep-alive), so tests wait
on it with `wait_for` instead of sleeping.
"""

import asyncio
import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

from shared.events import CallEvent


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    at: float  # the event loop's clock when it arrived
    status: int = 200

    def webhook(self) -> dict[str, object]:
        """A classic call event's parameters, or a POST's JSON body."""
        return dict(self.query) if self.method == "GET" else json.loads(self.body)


Answer = Callable[["Received", "Receiver"], tuple[int, dict[str, str]]]


@dataclass
class Receiver:
    answer: Answer = field(default=lambda request, receiver: (200, {}))
    requests: list[Received] = field(default_factory=list)
    port: int = 0  # 0: any free port
    delay: float = 0.0  # seconds before answering: a slow receiver
    hold_until: asyncio.Event | None = None  # answer nothing until it is set: a receiver that hangs

    def __post_init__(self) -> None:
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> "Receiver":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def delivered(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def webhook_ids(self) -> set[str]:
        """The webhook-ids delivered (JSON formats), each once."""
        return {r.headers["webhook-id"] for r in self.delivered()}

    def first_arrivals(self) -> dict[str, list[str]]:
        """Per chain, the webhook-ids delivered (JSON formats) in the order they first arrived;
        a repeat must carry its original's body."""
        bodies: dict[str, bytes] = {}
        arrived: dict[str, list[str]] = defaultdict(list)
        for request in self.delivered():
            webhook_id = request.headers["webhook-id"]
            if webhook_id in bodies:
                assert bodies[webhook_id] == request.body, f"{webhook_id} came again with another body"
                continue
            bodies[webhook_id] = request.body
            arrived[json.loads(request.body)["data"]["chain_id"]].append(webhook_id)
        return arrived

    async def wait_for(self, predicate: Callable[["Receiver"], bool], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: predicate(self))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                method, target, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while header := (await reader.readline()).decode().strip():
                    name, _, value = header.partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                parts = urlsplit(target)
                request = Received(
                    method,
                    parts.path,
                    dict(parse_qsl(parts.query, keep_blank_values=True)),
                    headers,
                    body,
                    asyncio.get_running_loop().time(),
                )
                if self.delay:
                    await asyncio.sleep(self.delay)
                if self.hold_until is not None:
                    await self.hold_until.wait()
                status, extra = self.answer(request, self)
                request.status = status
                reply = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n{reply}\r\nok".encode())
                await writer.drain()
                async with self._arrived:
                    self.requests.append(request)
                    self._arrived.notify_all()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def in_chains(events: Iterable[CallEvent]) -> dict[str, list[str]]:
    """Per chain, the ids of `events` (call events) in the order given: what `first_arrivals`
    must be when everything arrived in order."""
    chains: dict[str, list[str]] = defaultdict(list)
    for event in events:
        chains[event.chain_id].append(str(event.event_id))
    return chains


def refusing_once(suffix: str) -> tuple[Answer, set[str]]:
    """An answer that refuses (503) the first webhook of every chain whose id ends in `suffix`,
    then takes them all (signed JSON formats); and the set of chains it refused so far."""
    refused: set[str] = set()

    def answer(request: Received, receiver: Receiver) -> tuple[int, dict[str, str]]:
        chain = json.loads(request.body)["data"]["chain_id"]
        if chain.endswith(suffix) and chain not in refused:
            refused.add(chain)
            return 503, {}
        return 200, {}

    return answer, refused
