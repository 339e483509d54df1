"""The demo's built-in webhook receiver: a local HTTP endpoint (127.0.0.1) that the webhooks
service delivers the classic webhooks to, printing each one as a readable line."""

import contextlib
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, TextIO

from aiohttp import web

from shared.http_server import free_port

EVENTS = {
    "ringing": "ringing",
    "hangupincoming": "answered",
    "hangupoutgoing": "answered",
    "incoming": "ended",
    "outgoing": "ended",
}
HEADER = f"{'time':8}  {'event':10}  {'call id':22} {'parties':28} {'DID':10} detail"  # above the lines


def readable(webhook: dict[str, Any], now: datetime) -> str:
    """One classic webhook (a call event's query, or a recording POST's body) as a line."""
    call_id = str(webhook.get("id", ""))
    if "FILES" in webhook:
        # the whole link, token included, to click or curl: the demo signs its links with a
        # secret of this run only, and this is its own terminal, not a log
        links = " ".join(str(f) for f in webhook["FILES"])
        return f"{now:%H:%M:%S}  recording   {call_id:22} {links}"
    event = str(webhook.get("event", "?"))
    kind = EVENTS.get(event, event)
    caller, user = webhook.get("callerid", ""), webhook.get("user", "")
    outgoing = "outgoing" in event
    parties = f"{user} → {caller}" if outgoing else f"{caller} → {user}"
    detail = {
        "ringing": f"({webhook.get('usertype', '')})",
        "answered": f"transfer {webhook.get('trtype', '')}"
        if webhook.get("trtype") not in ("", "NotDef")
        else "",
        "ended": str(webhook.get("title", webhook.get("finishtype", ""))),
    }.get(kind, "")
    did = webhook.get("did") or ""
    return f"{now:%H:%M:%S}  {kind:10}  {call_id:22} {parties:28} {did:10} {detail}".rstrip()


@contextlib.asynccontextmanager
async def receiving(out: TextIO = sys.stdout) -> AsyncIterator[str]:
    """Listen on a free port of 127.0.0.1; yields the URL to deliver to."""

    async def webhook(request: web.Request) -> web.Response:
        payload: dict[str, Any] = dict(request.query)
        if request.method == "POST":
            payload = await request.json()
        print(readable(payload, datetime.now()), file=out, flush=True)
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", webhook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}/webhook"
    finally:
        await runner.cleanup()
