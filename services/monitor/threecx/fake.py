"""A fake 3CX v20 for tests and `callbridge pbx check` demonstrations, on 127.0.0.1.

It serves what the driver uses, shaped as ../shared/reference/3cx.md describes: the OAuth2 token
endpoint (one valid token at a time: minting ends the previous one), XAPI collections built from
a scenario directory (`Users`, `Queues`, `RingGroups`, `Receptionists`, `Trunks`,
`InboundRules`, `SystemStatus`, with the `X-3CX-Version` header) and the Call Control snapshot
`GET /callcontrol`. `Switches` turn on the behaviours the reference marks as uncertain.
"""

import contextlib
import itertools
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from aiohttp import web

from shared.events import Directory

from ..updates import EXTENSION, EXTERNAL_LINE, IVR, QUEUE, ParticipantUpdate, PbxUpdate

VERSION = "20.0.8.1109"
WAITING = frozenset({QUEUE, IVR})  # DNs whose waiting callers 3CX shows (when monitored)


class CallControlView:
    """What 3CX Call Control shows of the simulator's participants: the extensions' own, and a
    caller waiting in a queue or IVR as a participant of that DN. The trunk, and so the external
    party's own leg, is never shown (../shared/reference/3cx.md §1.1, §1.8)."""

    def __init__(self, *, empty_did: bool = False) -> None:
        self._empty_did = empty_did
        self._waiting: dict[int, ParticipantUpdate] = {}  # call → its caller shown at a queue or IVR
        self.callbacks: list[tuple[str, datetime]] = []  # (queue, when) of each callback ordered

    def show(self, update: PbxUpdate) -> list[ParticipantUpdate]:
        if not isinstance(update, ParticipantUpdate):
            return []
        if update.dn_type == EXTENSION:
            return [self._blank(update)]
        if update.dn_type != EXTERNAL_LINE:
            return []
        shown: list[ParticipantUpdate] = []
        before = self._waiting.get(update.callid)
        waits = not update.removed and update.party_dn_type in WAITING
        if update.removed and update.reason == "callback":
            self.callbacks.append((update.party_dn, update.at))  # 3CX reports these (XAPI, CDR)
        if before is not None and (not waits or before.dn != update.party_dn):
            shown.append(replace(before, at=update.at, removed=True))
            del self._waiting[update.callid]
        if waits:
            caller = ParticipantUpdate(
                at=update.at,
                dn=update.party_dn,
                dn_type=update.party_dn_type,
                id=update.id,
                callid=update.callid,
                legid=update.legid,
                status="Ringing",
                party_caller_id=update.party_caller_id,
                party_dn=update.dn,
                party_dn_type=EXTERNAL_LINE,
                party_did=update.party_did,
                originated_by_dn=update.originated_by_dn,
                originated_by_type=update.originated_by_type,
            )
            self._waiting[update.callid] = caller
            shown.append(self._blank(caller))
        return shown

    def _blank(self, p: ParticipantUpdate) -> ParticipantUpdate:
        return replace(p, party_did="") if self._empty_did else p


@dataclass
class Switches:
    expires_in_minutes: bool = False  # `expires_in: 60` meaning minutes, as before 20.0.9
    invalidate_tokens: bool = False  # the next request finds its token revoked (another client minted one)
    licensed: bool = True  # false: Call Control and XAPI answer 403 (no Enterprise licence)


@dataclass
class FakePbx:
    directory: Directory
    client_id: str = "callbridge"
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    switches: Switches = field(default_factory=Switches)
    participants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # DN → its participants
    minted: int = 0
    _token: str = ""
    _counter: "itertools.count[int]" = field(default_factory=lambda: itertools.count(1))

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._authorize])
        app.router.add_post("/connect/token", self._mint)
        app.router.add_get("/callcontrol", self._snapshot)
        for name, collection in (
            ("Users", self._users),
            ("Queues", self._queues),
            ("RingGroups", self._groups),
            ("Receptionists", self._ivrs),
            ("Trunks", self._trunks),
            ("InboundRules", self._rules),
        ):
            app.router.add_get(f"/xapi/v1/{name}", self._collection(collection))
        app.router.add_get("/xapi/v1/SystemStatus", self._status)
        return app

    @contextlib.asynccontextmanager
    async def serving(self, port: int) -> AsyncIterator[str]:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()

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
        monitored = self.directory.extensions
        return web.json_response(
            [
                {
                    "dn": e.number,
                    "type": "Wextension",
                    "devices": [],
                    "participants": self.participants.get(e.number, []),
                }
                for e in monitored
            ]
        )

    # --- XAPI ----------------------------------------------------------------------------------

    @staticmethod
    def _collection(items: Any) -> Any:
        async def answer(request: web.Request) -> web.Response:
            return web.json_response({"value": items()})

        return answer

    def _users(self) -> list[dict[str, Any]]:
        profiles = {"Custom 1": "Available2", "Custom 2": "OutOfOffice2", "Out of office": "OutOfOffice"}
        return [
            {
                "Id": n,
                "Number": e.number,
                "DisplayName": e.name,
                "Enabled": e.enabled,
                "IsRegistered": e.registered,
                "CurrentProfileName": profiles.get(e.profile, e.profile),
                "QueueStatus": "LoggedIn" if e.queue_logged_in else "LoggedOut",
                "RecordCalls": e.recording != "off",
                "RecordExternalCallsOnly": e.recording == "external",
            }
            for n, e in enumerate(self.directory.extensions, 1)
        ]

    def _queues(self) -> list[dict[str, Any]]:
        return [
            {"Id": n, "Number": q.number, "Name": q.name, "Agents": [{"Number": a} for a in q.agents]}
            for n, q in enumerate(self.directory.queues, 100)
        ]

    def _groups(self) -> list[dict[str, Any]]:
        return [
            {"Id": n, "Number": g.number, "Name": g.name, "Members": [{"Number": m} for m in g.members]}
            for n, g in enumerate(self.directory.groups, 200)
        ]

    def _ivrs(self) -> list[dict[str, Any]]:
        return [{"Id": n, "Number": i.number, "Name": i.name} for n, i in enumerate(self.directory.ivrs, 300)]

    def _trunks(self) -> list[dict[str, Any]]:
        return [
            {
                "Id": n,
                "Number": line.number,
                "Gateway": {"Name": line.name},
                "DidNumbers": [d.number for d in line.dids],
            }
            for n, line in enumerate(self.directory.lines, 400)
        ]

    def _rules(self) -> list[dict[str, Any]]:
        return [
            {"Id": n, "RuleName": did.name, "Data": did.number, "TrunkDN": {"Number": line.number}}
            for n, (line, did) in enumerate(
                ((line, did) for line in self.directory.lines for did in line.dids), 500
            )
        ]

    async def _status(self, request: web.Request) -> web.Response:
        registered = sum(e.registered for e in self.directory.extensions)
        calls = {p["callid"] for parts in self.participants.values() for p in parts}
        return web.json_response(
            {
                "Version": VERSION,
                "FQDN": "fake-3cx.local",
                "ExtensionsRegistered": registered,
                "ExtensionsTotal": len(self.directory.extensions),
                "CallsActive": len(calls),
                "LicenseActive": self.switches.licensed,
            }
        )
