"""One HTTP attempt: send a `WebhookRequest`, classify the answer. Never raises for the network.

Requests are spread over several httpx clients ("lanes"): one AsyncClient degrades sharply with
many requests in flight (docs/benchmarks.md), and each shard sends one request at a time.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from shared.clock import Clock

from .formats import WebhookRequest
from .policy import Failed, Outcome, classify

ANSWER_LIMIT = 2048


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    latency_ms: float
    answer: str  # the start of the response body, or what went wrong


class Sender:
    def __init__(self, clients: Sequence[httpx.AsyncClient], clock: Clock) -> None:
        if not clients:
            raise ValueError("Sender needs at least one HTTP client")
        self._clients = clients
        self._clock = clock

    async def send(self, request: WebhookRequest, answer_within: float, lane: int = 0) -> Result:
        client = self._clients[lane % len(self._clients)]
        began = time.perf_counter()
        try:
            response = await client.request(
                request.method,
                request.url,
                params=request.params,
                content=request.body,
                headers=request.headers,
                timeout=answer_within,
                follow_redirects=False,
            )
        except httpx.TimeoutException:
            return Result(Failed(None, f"no answer within {answer_within:g} s"), _ms(began), "timeout")
        except httpx.HTTPError as error:
            reason = f"{type(error).__name__}: {error}"[:200]
            return Result(Failed(None, reason), _ms(began), reason)
        outcome = classify(response.status_code, response.headers.get("retry-after"), self._clock.now())
        return Result(outcome, _ms(began), response.text[:ANSWER_LIMIT])


def _ms(began: float) -> float:
    return (time.perf_counter() - began) * 1000.0
