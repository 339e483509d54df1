"""The aiohttp transport against a real HTTP server on 127.0.0.1 (no broker needed)."""

import asyncio
import json
import socket

from aiohttp import web

from services.webhooks.outgoing import WebhookRequest
from services.webhooks.policy import Delivered, Failed
from services.webhooks.request_text import remembered
from services.webhooks.sender import AiohttpTransport, Sender, new_session
from shared.clock import SystemClock
from shared.http_server import free_port
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


async def _in_two_parts(request: web.Request, body: bytes) -> web.StreamResponse:
    """The body in two writes with a pause between, as a slow network delivers it."""
    response = web.StreamResponse()
    await response.prepare(request)
    await response.write(body[: len(body) // 2])
    await asyncio.sleep(0.05)  # the client has had the first part by now (nothing to await here)
    await response.write(body[len(body) // 2 :])
    await response.write_eof()
    return response


async def test_an_answer_and_an_attached_file_are_read_to_their_end() -> None:
    """An id is read from the whole answer, and a recording is uploaded whole, however the
    network splits them (a single read returns what has arrived)."""
    answer = json.dumps({"padding": "x" * 9000, "id": "c-7"}).encode()
    mp3 = bytes(range(256)) * 400
    uploads: list[bytes] = []

    async def crm(request: web.Request) -> web.StreamResponse:
        if request.content_type.startswith("multipart/"):
            upload = (await request.post())["file"]
            assert isinstance(upload, web.FileField)
            with upload.file:
                uploads.append(upload.file.read())
        return await _in_two_parts(request, answer)

    async def recording(request: web.Request) -> web.StreamResponse:
        return await _in_two_parts(request, mp3)

    app = web.Application()
    app.router.add_post("/calls", crm)
    app.router.add_get("/a.mp3", recording)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with new_session() as session:
            sender = Sender(AiohttpTransport(session), SystemClock())
            base = f"http://127.0.0.1:{port}"
            created = await sender.send(
                WebhookRequest("POST", f"{base}/calls", remember=(("call", "id"),)), 5
            )
            attach = ("file", f"{base}/a.mp3")
            await sender.send(
                WebhookRequest("POST", f"{base}/calls", body=b'{"note": "n"}', attach=attach), 5
            )
    finally:
        await runner.cleanup()
    assert remembered((("call", "id"),), created.answer) == {"call": "c-7"}
    assert uploads == [mp3]


async def _answer_once_per_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: list[bytes]
) -> None:
    """Answer a connection's first request and keep it alive; close it on the next request
    without answering: the race of a server closing an idle connection as a client reuses it."""
    for answers in (True, False):
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            ),
            0,
        )
        seen.append(await reader.readexactly(length))
        if answers:
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: keep-alive\r\n\r\nok")
            await writer.drain()
    writer.close()


async def test_a_kept_alive_connection_closed_under_a_post_is_retried_at_once() -> None:
    """A POST the server drops with the connection it kept alive goes again at once on a new
    connection, as aiohttp already does for GET (not after the first retry's delay)."""
    seen: list[bytes] = []
    port = free_port()
    server = await asyncio.start_server(
        lambda r, w: _answer_once_per_connection(r, w, seen), "127.0.0.1", port
    )
    async with server, new_session() as session:
        sender = Sender(AiohttpTransport(session), SystemClock())
        url = f"http://127.0.0.1:{port}/hook"
        first = await sender.send(WebhookRequest("POST", url, body=b'{"n":1}'), 5)
        second = await sender.send(WebhookRequest("POST", url, body=b'{"n":2}'), 5)
    assert isinstance(first.outcome, Delivered) and isinstance(second.outcome, Delivered)
    assert seen == [b'{"n":1}', b'{"n":2}', b'{"n":2}']  # dropped on the kept connection, then sent anew
