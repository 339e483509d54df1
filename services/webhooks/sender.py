"""One HTTP attempt: send a `WebhookRequest`, classify the answer. Never raises for the network.

The HTTP client is aiohttp: in the same run, httpx reached ~730 requests/s at concurrency 1 and
~540/s at concurrency 50 even spread over ten clients, aiohttp ~2,300/s and ~5,100/s against
the same local receiver (docs/benchmarks.md). The transport is a small protocol, so tests send
through a fake and nothing else knows which client is used.
"""

import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp

from shared.clock import Clock
from shared.logging import endpoint_address, redact

from .formats import WebhookRequest
from .policy import Failed, Outcome, classify

ANSWER_LIMIT = 2048


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
            async with self._session.request(
                request.method,
                request.url,
                params=request.params,
                data=request.body,
                headers=request.headers,
                timeout=aiohttp.ClientTimeout(total=answer_within),
                allow_redirects=False,
            ) as response:
                text = (await response.content.read(ANSWER_LIMIT)).decode(errors="replace")
                return Answer(response.status, response.headers.get("Retry-After"), text)
        except aiohttp.ClientError as error:
            text = redact(f"{type(error).__name__}: {error}").replace(
                request.url, endpoint_address(request.url)
            )
            raise TransportError(text[:200]) from None


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
