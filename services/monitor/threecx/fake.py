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
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from shared.events import Directory

VERSION = "20.0.8.1109"


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
