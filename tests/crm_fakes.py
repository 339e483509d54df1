"""Fakes of the CRMs the presets speak to, built from their public documentation: each checks
what its API requires (fields, values, authentication, ids it handed out) and answers 4xx
otherwise, as the real one would, and keeps what it was told.

- Zammad generic CTI: POST /api/v1/cti/{token}, JSON `event` newCall | answer | hangup.
- Bitrix24: POST /rest/{user}/{code}/telephony.externalcall.register|finish|attachRecord.json.
- HubSpot: POST /crm/v3/objects/calls (Bearer), PATCH /crm/v3/objects/calls/{id}.
- Pipedrive: POST /v1/callLogs?api_token=, POST /v1/callLogs/{id}/recordings (multipart `file`).
- Slack: POST /services/{T}/{B}/{secret}, JSON `text`.
- any other endpoint (classic, json, a template of the test's): /hooks/{name}, answered 200;
- and the recordings' download links, for Pipedrive's upload: GET /webapi/recording/{name}.
"""

import contextlib
import itertools
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from shared.http_server import free_port

ZAMMAD_TOKEN, BITRIX_CODE, HUBSPOT_TOKEN, PIPEDRIVE_TOKEN = "z-t0k", "b1tr1x", "pat-h0b", "p1pe"
ZAMMAD_CAUSES = {"normalClearing", "busy", "cancel", "noAnswer", "congestion", "notFound", "forwarded"}
PIPEDRIVE_OUTCOMES = {"connected", "no_answer", "left_message", "left_voicemail", "wrong_number", "busy"}
HUBSPOT_STATUSES = {
    *("BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING"),
    *("FAILED", "IN_PROGRESS", "NO_ANSWER", "QUEUED", "RINGING"),
}
UTC_TEXT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@dataclass
class Crms:
    zammad: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # callId → its events
    bitrix: dict[str, dict[str, Any]] = field(default_factory=dict)  # CALL_ID → the call
    hubspot: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → properties
    pipedrive: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → the call log
    slack: list[str] = field(default_factory=list)
    hooks: list[tuple[str, str]] = field(default_factory=list)  # any other endpoint: (method, path)
    ids: itertools.count = field(default_factory=lambda: itertools.count(1001))
    archive: Path | None = None  # served as the recordings service serves it (tokens not checked)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/cti/{token}", self._zammad)
        app.router.add_post("/rest/1/{code}/{method}", self._bitrix)
        app.router.add_post("/crm/v3/objects/calls", self._hubspot_create)
        app.router.add_patch("/crm/v3/objects/calls/{id}", self._hubspot_update)
        app.router.add_post("/v1/callLogs", self._pipedrive_log)
        app.router.add_post("/v1/callLogs/{id}/recordings", self._pipedrive_recording)
        app.router.add_post("/services/{team}/{bot}/{secret}", self._slack)
        app.router.add_get("/webapi/recording/{name}", self._recording)
        app.router.add_route("*", "/hooks/{name}", self._hook)
        return app

    async def _hook(self, request: web.Request) -> web.Response:
        self.hooks.append((request.method, request.path))
        return web.Response(text="ok")

    async def _recording(self, request: web.Request) -> web.FileResponse:
        found = list(self.archive.rglob(request.match_info["name"])) if self.archive else []
        if not found:
            raise web.HTTPNotFound()
        return web.FileResponse(found[0], headers={"Content-Type": "audio/mpeg"})

    async def _zammad(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != ZAMMAD_TOKEN:
            raise web.HTTPUnauthorized(text="wrong CTI token")
        body = await request.json()
        _require(body, "event", "from", "to", "direction", "callId")
        _check(body["direction"] in ("in", "out"), "direction is in or out")
        calls = self.zammad.setdefault(body["callId"], [])
        if body["event"] == "newCall":
            _check(not calls, "a callId is new with newCall")
        else:
            _check(bool(calls) and calls[-1]["event"] != "hangup", "answer/hangup of a call in progress")
            _check(body["event"] in ("answer", "hangup"), "event is newCall, answer or hangup")
        if body["event"] == "hangup":
            _check(body.get("cause") in ZAMMAD_CAUSES, f"cause is one of {sorted(ZAMMAD_CAUSES)}")
        calls.append(body)
        return web.json_response({})

    async def _bitrix(self, request: web.Request) -> web.Response:
        if request.match_info["code"] != BITRIX_CODE:
            raise web.HTTPUnauthorized(text='{"error": "invalid_credentials"}')
        body, method = await request.json(), request.match_info["method"]
        if method == "telephony.externalcall.register.json":
            _require(body, "USER_PHONE_INNER", "PHONE_NUMBER", "TYPE", "CALL_START_DATE")
            _check(body["TYPE"] in (1, 2, 3, 4), "TYPE is 1 (outgoing) to 4 (callback)")
            call_id = f"externalCall.{next(self.ids)}"
            self.bitrix[call_id] = {"register": body}
            return web.json_response({"result": {"CALL_ID": call_id, "CRM_CREATED_LEAD": None}})
        _require(body, "CALL_ID")
        call = self.bitrix.get(body["CALL_ID"])
        _check(call is not None, "CALL_ID from telephony.externalcall.register")
        assert call is not None
        if method == "telephony.externalcall.finish.json":
            _require(body, "USER_PHONE_INNER", "DURATION")
            call["finish"] = body
        elif method == "telephony.externalcall.attachRecord.json":
            _require(body, "FILENAME", "RECORD_URL")
            _check("finish" in call, "a record is attached to a finished call")
            call.setdefault("records", []).append(body)
        else:
            raise web.HTTPNotFound(text=f"no method {method}")
        return web.json_response({"result": True})

    async def _hubspot_create(self, request: web.Request) -> web.Response:
        _bearer(request, HUBSPOT_TOKEN)
        properties = (await request.json())["properties"]
        _require(properties, "hs_timestamp")
        _check(properties.get("hs_call_direction") in ("INBOUND", "OUTBOUND"), "hs_call_direction")
        _hubspot_status(properties)
        call_id = str(next(self.ids))
        self.hubspot[call_id] = dict(properties)
        # the whole object comes back, as HubSpot answers: more than a few kB
        echo = {"id": call_id, "properties": properties | {"hs_object_source_detail": "x" * 3000}}
        return web.json_response(echo, status=201)

    async def _hubspot_update(self, request: web.Request) -> web.Response:
        _bearer(request, HUBSPOT_TOKEN)
        call = self.hubspot.get(request.match_info["id"])
        if call is None:
            raise web.HTTPNotFound(text='{"message": "resource not found"}')
        properties = (await request.json())["properties"]
        _hubspot_status(properties)
        call.update(properties)
        return web.json_response({"id": request.match_info["id"], "properties": call})

    async def _pipedrive_log(self, request: web.Request) -> web.Response:
        _token(request, PIPEDRIVE_TOKEN)
        body = await request.json()
        _require(body, "to_phone_number", "outcome", "start_time", "end_time")
        _check(body["outcome"] in PIPEDRIVE_OUTCOMES, f"outcome is one of {sorted(PIPEDRIVE_OUTCOMES)}")
        _check(
            all(UTC_TEXT.match(body[k]) for k in ("start_time", "end_time")), "times are YYYY-MM-DD HH:MM:SS"
        )
        log_id = f"{next(self.ids):x}"
        self.pipedrive[log_id] = body
        return web.json_response({"success": True, "data": {"id": log_id}})

    async def _pipedrive_recording(self, request: web.Request) -> web.Response:
        _token(request, PIPEDRIVE_TOKEN)
        log = self.pipedrive.get(request.match_info["id"])
        if log is None:
            raise web.HTTPNotFound(text='{"success": false}')
        if log.get("recordings"):  # one recording per call log
            raise web.HTTPConflict(text='{"success": false, "error": "recording already exists"}')
        form = await request.post()
        upload = form.get("file")
        _check(isinstance(upload, web.FileField), "the recording is a multipart file named file")
        assert isinstance(upload, web.FileField)
        with upload.file:
            log.setdefault("recordings", []).append((upload.filename, upload.file.read()))
        return web.json_response({"success": True})

    async def _slack(self, request: web.Request) -> web.Response:
        body = await request.json()
        _require(body, "text")
        self.slack.append(body["text"])
        return web.Response(text="ok")


@contextlib.asynccontextmanager
async def serving(crms: Crms) -> AsyncIterator[str]:
    """The fakes on a free port of 127.0.0.1; yields their base URL."""
    runner = web.AppRunner(crms.app(), access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _hubspot_status(properties: dict[str, Any]) -> None:
    status = properties.get("hs_call_status")
    _check(
        status is None or status in HUBSPOT_STATUSES, f"hs_call_status is one of {sorted(HUBSPOT_STATUSES)}"
    )


def _require(body: dict[str, Any], *names: str) -> None:
    missing = [n for n in names if body.get(n) in (None, "")]
    _check(not missing, f"required: {', '.join(missing)}")


def _check(ok: bool, rule: str) -> None:
    if not ok:
        raise web.HTTPBadRequest(text=f'{{"error": "{rule}"}}', content_type="application/json")


def _bearer(request: web.Request, token: str) -> None:
    if request.headers.get("Authorization") != f"Bearer {token}":
        raise web.HTTPUnauthorized(text='{"status": "error", "category": "INVALID_AUTHENTICATION"}')


def _token(request: web.Request, token: str) -> None:
    if request.query.get("api_token") != token:
        raise web.HTTPUnauthorized(text='{"success": false, "error": "unauthorized access"}')
