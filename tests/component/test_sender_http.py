"""The aiohttp transport against a real HTTP server on 127.0.0.1 (no broker needed)."""

import socket

from services.webhooks.formats import WebhookRequest
from services.webhooks.policy import Delivered, Failed
from services.webhooks.sender import AiohttpTransport, Sender, new_session
from shared.clock import SystemClock
from tests.receiver import Received, Receiver


async def test_query_body_and_headers_arrive() -> None:
    async with Receiver() as receiver, new_session() as session:
        sender = Sender(AiohttpTransport(session), SystemClock())
        result = await sender.send(
            WebhookRequest("GET", receiver.url, params={"event": "ringing", "id": "x-0"}), 5
        )
        await sender.send(
            WebhookRequest("POST", receiver.url, body=b'{"a":1}', headers={"webhook-id": "m1"}), 5
        )
    assert isinstance(result.outcome, Delivered)
    get, post = receiver.requests
    assert (get.method, get.query) == ("GET", {"event": "ringing", "id": "x-0"})
    assert (post.method, post.body, post.headers["webhook-id"]) == ("POST", b'{"a":1}', "m1")


async def test_redirects_are_not_followed() -> None:
    def answer(request: Received, receiver: Receiver) -> tuple[int, dict[str, str]]:
        return 302, {"location": f"http://127.0.0.1:{receiver.port}/elsewhere"}

    async with Receiver(answer) as receiver, new_session() as session:
        result = await Sender(AiohttpTransport(session), SystemClock()).send(
            WebhookRequest("GET", receiver.url), 5
        )
    assert [r.path for r in receiver.requests] == ["/hook"]
    assert isinstance(result.outcome, Failed) and result.outcome.reason == "redirect not followed"


async def test_a_slow_receiver_times_out() -> None:
    async with Receiver(delay=2.0) as receiver, new_session() as session:
        result = await Sender(AiohttpTransport(session), SystemClock()).send(
            WebhookRequest("GET", receiver.url), 0.3
        )
    assert isinstance(result.outcome, Failed)
    assert (result.outcome.status, result.outcome.reason) == (None, "no answer within 0.3 s")
    assert 250 <= result.latency_ms < 1500


async def test_nobody_listening_is_a_failure_not_a_crash() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    async with new_session() as session:
        result = await Sender(AiohttpTransport(session), SystemClock()).send(
            WebhookRequest("GET", f"http://127.0.0.1:{port}/"), 5
        )
    assert isinstance(result.outcome, Failed) and result.outcome.status is None
    assert "ClientConnectorError" in result.outcome.reason
