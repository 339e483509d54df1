"""One HTTP attempt: send a `WebhookRequest`, classify the answer. Never raises for the network.

The HTTP client is aiohttp: in the same run, httpx reached ~730 requests/s at concurrency 1 and
~540/s at concurrency 50 even spread over ten clients, aiohttp ~2,300/s and ~5,100/s against
the same local receiver (docs/benchmarks.md). The transport is a small protocol, so tests send
through a fake and nothing else knows which client is used.
"""

import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from aiohttp.client import IDEMPOTENT_METHODS

from shared.clock import Clock
from shared.logging import endpoint_address, redact

from .outgoing import WebhookRequest
from .policy import Failed, Outcome, classify

ANSWER_LIMIT = 2048
REMEMBER_LIMIT = 256 * 1024  # an answer a remote id is read from (HubSpot echoes the whole object)
FILE_LIMIT = 100 * 2**20  # an attached recording


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    retry_after: str | None
    text: str


class TransportError(Exception):
    """The request got no HTTP answer (refused, reset, DNS, TLS…)."""


class Transport(Protocol):
    async def __call__(self, request: WebhookRequest, answer_within: float) -> Answer:
        """Send; raise TimeoutError past `answer_within` seconds, TransportError without an answer."""
        ...


class AiohttpTransport:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def __call__(self, request: WebhookRequest, answer_within: float) -> Answer:
        try:
            return await self._once_more_on_a_closed_connection(request, answer_within)
        except aiohttp.ClientError as error:
            text = redact(f"{type(error).__name__}: {error}").replace(
                request.url, endpoint_address(request.url)
            )
            raise TransportError(text[:200]) from None

    async def _once_more_on_a_closed_connection(self, request: WebhookRequest, within: float) -> Answer:
        """aiohttp sends a GET again at once when the connection it reused was closed under it
        (a server closes an idle connection just as it is taken: uvicorn, Node and Apache after
        5 s); a POST goes again the same way here, not after the first retry's delay. The
        request may have arrived before the close, so this is a retry like any other."""
        if request.method in IDEMPOTENT_METHODS:
            return await self._send(request, within)
        began = time.monotonic()
        try:
            return await self._send(request, within)
        except aiohttp.ClientConnectorError:
            raise  # no connection was made: nothing was closed under the request
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            return await self._send(request, max(within - (time.monotonic() - began), 0.001))

    async def _send(self, request: WebhookRequest, answer_within: float) -> Answer:
        timeout = aiohttp.ClientTimeout(total=answer_within)
        data: Any = request.body
        headers = request.headers
        if request.attach:
            data = await self._form(request, timeout)
            headers = {k: v for k, v in headers.items() if k != "content-type"}  # the form's own
        async with self._session.request(
            request.method,
            request.url,
            params=request.params,
            data=data,
            headers=headers,
            timeout=timeout,
            allow_redirects=False,
        ) as response:
            limit = REMEMBER_LIMIT if request.remember else ANSWER_LIMIT
            text = (await read_up_to(response.content, limit)).decode(errors="replace")
            return Answer(response.status, response.headers.get("Retry-After"), text)

    async def _form(self, request: WebhookRequest, within: aiohttp.ClientTimeout) -> aiohttp.FormData:
        """The body as a form with the file at the attached URL (a recording) beside its fields."""
        assert request.attach is not None
        field, url = request.attach
        async with self._session.get(url, timeout=within, raise_for_status=True) as file:
            content = await read_up_to(file.content, FILE_LIMIT + 1)
        if len(content) > FILE_LIMIT:
            raise aiohttp.ClientPayloadError(f"the attached file is over {FILE_LIMIT // 2**20} MB")
        form = aiohttp.FormData()
        for name, value in (json.loads(request.body) if request.body else {}).items():
            form.add_field(name, str(value))
        filename = url.split("?")[0].rsplit("/", 1)[-1] or "file"
        form.add_field(field, content, filename=filename, content_type=file.content_type)
        return form


async def read_up_to(stream: aiohttp.StreamReader, limit: int) -> bytes:
    """The body to its end or to `limit` bytes (a single read stops at what has arrived)."""
    data = bytearray()
    while len(data) < limit and (chunk := await stream.read(limit - len(data))):
        data += chunk
    return bytes(data)


def new_session() -> aiohttp.ClientSession:
    """The service's one HTTP session: keep-alive, up to 200 connections."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=200), auto_decompress=True)


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    latency_ms: float
    answer: str  # the start of the response body, or what went wrong


class Sender:
    def __init__(self, transport: Transport, clock: Clock) -> None:
        self._transport = transport
        self._clock = clock

    async def send(self, request: WebhookRequest, answer_within: float) -> Result:
        began = time.perf_counter()
        try:
            answer = await self._transport(request, answer_within)
        except TimeoutError:
            return Result(Failed(None, f"no answer within {answer_within:g} s"), _ms(began), "timeout")
        except TransportError as error:
            return Result(Failed(None, str(error)), _ms(began), str(error))
        outcome = classify(answer.status, answer.retry_after, self._clock.now())
        return Result(outcome, _ms(began), answer.text)


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000.0
