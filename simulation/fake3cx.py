"""A fake 3CX v20 for tests and `callbridge pbx check` demonstrations, on 127.0.0.1.

It serves what the driver uses, shaped as docs/3cx.md describes: the OAuth2 token
endpoint (one valid token at a time: minting ends the previous one), XAPI collections built from
a scenario directory (`Users`, `Queues`, `RingGroups`, `Receptionists`, `Trunks`,
`InboundRules`, `SystemStatus`, with the `X-3CX-Version` header) and the Call Control snapshot
`GET /callcontrol`. `Switches` turn on the behaviours the reference marks as uncertain.
"""

import asyncio
import contextlib
import itertools
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from services.monitor.updates import EXTENSION, IVR, QUEUE, ParticipantUpdate
from shared.commands import MakeCall
from shared.directory import Directory

from .call_control import CallControlView
from .driver import SimulatorDriver
from .xapi_collections import COLLECTIONS, Rows, user_changes

logger = logging.getLogger(__name__)
VERSION = "20.0.8.1109"


@dataclass
class Switches:
    expires_in_minutes: bool = False  # `expires_in: 60` meaning minutes, as before 20.0.9
    invalidate_tokens: bool = False  # the next request finds its token revoked (another client minted one)
    licensed: bool = True  # false: Call Control and XAPI answer 403 (no Enterprise licence)
    duplicate_upserts: bool = False  # every Upsert frame is sent twice
    get_races_remove: bool = False  # a participant's Remove comes as an Upsert whose GET finds it gone (404)
    drop_socket_at: float | None = None  # PBX seconds into the scenario: the sockets close; frames are lost
    socket_outage: float = 0.0  # and for this many PBX seconds after the drop, new sockets are refused (503)
    empty_did: bool = False  # party_did empty, as v20 sends it on inbound calls
    snapshot_delay: float = 0.0  # wall seconds a snapshot takes to answer (taken when asked: older by then)
    get_delay: float = 0.0  # wall seconds a participant's GET takes to answer (a PBX that far away)


@dataclass
class FakePbx:
    """The fake PBX. With `calls` (a simulator driver) it plays that scenario or traffic and shows
    its participants through Call Control; without, it has a directory and no calls."""

    directory: Directory
    calls: "SimulatorDriver | None" = None
    client_id: str = "callbridge"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    switches: Switches = field(default_factory=Switches)
    minted: int = 0
    entity_gets: int = 0
    most_gets_at_once: int = 0  # participant GETs in hand together, at the most
    played: asyncio.Event = field(default_factory=asyncio.Event)
    frames_sent: int = 0  # Call Control notices written to a socket
    snapshot_asked: asyncio.Event = field(default_factory=asyncio.Event)  # set at each `GET /callcontrol`
    # an Event: each snapshot is taken when asked for and answered only once it is set (a busy PBX
    # answering from an older moment, while its socket goes on)
    snapshot_gate: asyncio.Event | None = None
    _token: str = ""
    _counter: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))
    _entities: dict[tuple[str, int], ParticipantUpdate] = field(default_factory=dict)
    _sockets: set[web.WebSocketResponse] = field(default_factory=set)
    _sequence: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))
    _dropped: bool = False
    _gets_in_hand: int = 0
    _refuse_until: datetime | None = None
    _view: CallControlView | None = None

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authorize])
        app.router.add_post("/connect/token", self._mint)
        app.router.add_get("/callcontrol", self._snapshot)
        app.router.add_get("/callcontrol/ws", self._socket)
        app.router.add_get("/callcontrol/{dn}/participants/{id}", self._entity)
        app.router.add_post("/callcontrol/{dn}/makecall", self._makecall)
        for name, rows in COLLECTIONS.items():
            app.router.add_get(f"/xapi/v1/{name}", self._collection(rows))
        app.router.add_patch(r"/xapi/v1/Users({id:\d+})", self._patch_user)
        app.router.add_get("/xapi/v1/SystemStatus", self._status)
        app.router.add_get("/xapi/v1/ReportQueueCallbacks/{call:.*}", self._queue_callbacks)
        return app

    @property
    def view(self) -> CallControlView:
        if self._view is None:
            self._view = CallControlView(empty_did=self.switches.empty_did)
        return self._view

    @contextlib.asynccontextmanager
    async def serving(self, port: int) -> AsyncIterator[str]:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        playing = asyncio.create_task(self._play()) if self.calls is not None else None
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            if playing is not None:
                playing.cancel()
                await asyncio.gather(playing, return_exceptions=True)
            for ws in list(self._sockets):
                await ws.close()
            await runner.cleanup()

    # --- the calls -------------------------------------------------------------------------------

    async def _play(self) -> None:
        assert self.calls is not None
        start: datetime | None = None
        async for update in self.calls.updates():
            start = start or update.at
            drop = self.switches.drop_socket_at
            if drop is not None and not self._dropped and (update.at - start).total_seconds() >= drop:
                self._dropped = True
                self._refuse_until = update.at + timedelta(seconds=self.switches.socket_outage)
                for ws in list(self._sockets):
                    await ws.close()  # the driver reconnects; what happens meanwhile it must repair
            for shown in self.view.show(update):
                await self.publish(shown)
        self.played.set()

    async def publish(self, p: ParticipantUpdate) -> None:
        """Show `p` through Call Control: its entity, and a notice on every socket."""
        key = (p.dn, p.id)
        if p.removed:
            self._entities.pop(key, None)
            kind = 0 if self.switches.get_races_remove else 1
        else:
            self._entities[key] = p
            kind = 0
        frame = {
            "sequence": 0,
            "event": {
                "event_type": kind,
                "entity": f"/callcontrol/{p.dn}/participants/{p.id}",
                "attached_data": None,
            },
        }
        for _ in range(2 if kind == 0 and self.switches.duplicate_upserts else 1):
            for ws in list(self._sockets):
                if ws.closed:
                    continue
                frame["sequence"] = next(self._sequence)
                self.frames_sent += 1
                try:
                    await ws.send_json(frame)
                except (ConnectionError, RuntimeError):
                    self.frames_sent -= 1  # never left

    def _monitored(self) -> list[tuple[str, str]]:
        directory = self._directory_now()
        return (
            [(e.number, EXTENSION) for e in directory.extensions]
            + [(q.number, QUEUE) for q in directory.queues]
            + [(i.number, IVR) for i in directory.ivrs]
        )

    def _directory_now(self) -> Directory:
        return self.calls.simulator.directory if self.calls is not None else self.directory

    # --- auth --------------------------------------------------------------------------------

    async def _mint(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return web.json_response({"error": "invalid_client"}, status=400)
        self.minted += 1
        self._token = f"token-{next(self._counter)}-{secrets.token_hex(8)}"
        expires_in = 60 if self.switches.expires_in_minutes else 3600
        return web.json_response(
            {"token_type": "Bearer", "expires_in": expires_in, "access_token": self._token}
        )

    @web.middleware
    async def _authorize(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/connect/token":
            return await handler(request)  # type: ignore[no-any-return]
        if self.switches.invalidate_tokens:
            self.switches.invalidate_tokens = False
            self._token = f"revoked-{secrets.token_hex(8)}"
        if request.headers.get("Authorization") != f"Bearer {self._token}" or not self._token:
            return web.json_response({"error": "unauthorized"}, status=401)
        if not self.switches.licensed:
            return web.json_response({"error": "license"}, status=403)
        response: web.StreamResponse = await handler(request)
        response.headers["X-3CX-Version"] = VERSION
        return response

    # --- Call Control --------------------------------------------------------------------------

    async def _snapshot(self, request: web.Request) -> web.Response:
        shown: dict[str, list[dict[str, Any]]] = {}  # each DN's participants, in one pass over them
        for (owner, _), p in self._entities.items():
            shown.setdefault(owner, []).append(_entity(p))
        taken = web.json_response(
            [
                {"dn": dn, "type": kind, "devices": [], "participants": shown.get(dn, [])}
                for dn, kind in self._monitored()
            ]
        )
        self.snapshot_asked.set()
        logger.info("Call Control snapshot asked (%d participants)", len(self._entities))
        if self.switches.snapshot_delay:
            await asyncio.sleep(self.switches.snapshot_delay)
        if self.snapshot_gate is not None:
            await self.snapshot_gate.wait()
        return taken

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        refused = self._refuse_until
        if refused is not None and self.calls is not None and self.calls.now() < refused:
            return web.json_response({"error": "service unavailable"}, status=503)
        ws = web.WebSocketResponse(heartbeat=5)
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            async for _ in ws:  # requests over the socket are not served here
                pass
        finally:
            self._sockets.discard(ws)
        return ws

    async def _entity(self, request: web.Request) -> web.Response:
        self.entity_gets += 1
        self._gets_in_hand += 1
        self.most_gets_at_once = max(self.most_gets_at_once, self._gets_in_hand)
        try:
            if self.switches.get_delay:
                await asyncio.sleep(self.switches.get_delay)
        finally:
            self._gets_in_hand -= 1
        found = self._entities.get((request.match_info["dn"], int(request.match_info["id"])))
        if found is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(_entity(found))

    async def _makecall(self, request: web.Request) -> web.Response:
        assert self.calls is not None, "a fake PBX without calls takes no makecall"
        body = await request.json()
        destination = str(body.get("destination") or body.get("Destination") or "")
        result = await self.calls.execute(MakeCall(first=request.match_info["dn"], second=destination))
        if result.failure == "not_found":
            return web.json_response({"error": result.reason}, status=404)
        if not result.ok:
            return web.json_response(
                {"finalstatus": "Failed", "reason": "Refused", "reasontext": result.reason}
            )
        return web.json_response({"finalstatus": "Success", "result": {"callid": result.call_number}})

    # --- XAPI ----------------------------------------------------------------------------------

    def _collection(self, rows: Callable[[Directory], Rows]) -> Any:
        async def answer(request: web.Request) -> web.Response:
            return web.json_response({"value": rows(self._directory_now())})

        return answer

    async def _patch_user(self, request: web.Request) -> web.Response:
        assert self.calls is not None, "a fake PBX without calls takes no changes"
        extension = self._directory_now().extensions[int(request.match_info["id"]) - 1]
        changes = user_changes(extension, await request.json())
        for change in changes:
            result = await self.calls.execute(change)
            if not result.ok:
                return web.json_response({"error": result.reason}, status=400)
        return web.Response(status=204)

    async def _queue_callbacks(self, request: web.Request) -> web.Response:
        arguments = dict(re.findall(r"(\w+)=([^,)]+)", request.match_info["call"]))
        queue = arguments.get("queueDnStr", "").strip("'")
        since, until = (datetime.fromisoformat(arguments[k]) for k in ("startDt", "endDt"))
        count = sum(q == queue and since <= at <= until for q, at in self.view.callbacks)
        return web.json_response({"value": [{"QueueDnNumber": queue, "Dn": queue, "CallbacksCount": count}]})

    async def _status(self, request: web.Request) -> web.Response:
        registered = sum(e.registered for e in self._directory_now().extensions)
        calls = {p.callid for p in self._entities.values()}
        return web.json_response(
            {
                "Version": VERSION,
                "FQDN": "fake-3cx.local",
                "ExtensionsRegistered": registered,
                "ExtensionsTotal": len(self._directory_now().extensions),
                "CallsActive": len(calls),
                "LicenseActive": self.switches.licensed,
            }
        )


def _entity(p: ParticipantUpdate) -> dict[str, Any]:
    """A participant as 3CX's `GET /callcontrol/{dn}/participants/{id}` answers it."""
    return {name: getattr(p, name) for name in ParticipantUpdate.__slots__ if name not in PRIVATE}


PRIVATE = frozenset({"at", "dn_type", "removed", "reason"})  # ours, not 3CX's
