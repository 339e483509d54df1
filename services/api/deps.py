"""What the API's routes depend on (FastAPI dependencies): the replica's wiring, the PBX state
once it is loaded, key checks, the monitor for commands, and the parameters and errors the
methods share. `http.create_app` puts the wiring on the app; nothing here is global."""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import JSONResponse

from shared import commands
from shared.bus import Bus, RpcUnavailable
from shared.directory import Extension
from shared.keys import Keys
from shared.pbx_state import PbxState
from shared.settings import ApiSettings

from . import answers
from .cache import StateCache
from .dialling import DialPolicy, RateLimit
from .metrics import ApiMetrics
from .stream import EventStream

AUDIT = logging.getLogger("callbridge.audit")


@dataclass(frozen=True)
class Wiring:
    """One API replica's parts, as its routes need them."""

    cache: StateCache
    stream: EventStream
    bus: Bus
    settings: ApiSettings
    metrics: ApiMetrics
    keys: Keys
    connected: Callable[[], bool]
    active: answers.RenderedCalls  # pbx.ac.get, rendered per call
    info: answers.RenderedCalls  # pbx.callsinfo.get, rendered per call
    dialling: DialPolicy
    makecalls: RateLimit  # per key


@dataclass(frozen=True)
class Caller:
    """Who sends a command: the fingerprint of the key the check granted, and the address."""

    key: str
    address: str


def caller(request: Request) -> Caller:
    return Caller(getattr(request.state, "key", "no key"), request.client.host if request.client else "?")


Calling = Annotated[Caller, Depends(caller)]


def wiring(request: Request) -> Wiring:
    wired: Wiring = request.app.state.wiring
    return wired


Wired = Annotated[Wiring, Depends(wiring)]


async def state(wired: Wired) -> PbxState:
    if not wired.cache.ready:
        raise HTTPException(503, "the PBX state is not loaded yet: the monitor has not answered")
    return wired.cache.state


State = Annotated[PbxState, Depends(state)]
Number = Annotated[str, Query(min_length=1, max_length=32, description="the DN's number")]
OnOff = Literal["on", "off"]
LogIn = Annotated[OnOff, Query(description="on: log in, off: log out")]
FAILURE_STATUS = {"not_found": 404, "invalid": 400, "refused": 409}


def extension_of(pbx: PbxState, number: str) -> Extension:
    extension = pbx.extensions.get(number)
    if extension is None:
        raise HTTPException(404, f"extension {number} does not exist")
    return extension


async def send(wired: Wiring, command: commands.Command, by: Caller) -> Any:
    """Have the monitor carry out `command`: its answer, or a failure with the PBX's reason. One
    audit line each (`callbridge.audit`): what, by which key (its fingerprint), from where, and
    how it ended."""
    try:
        answer = await wired.bus.call(commands.COMMAND, command.model_dump(), wired.settings.command_timeout)
    except RpcUnavailable as error:
        audit(command, by, "not carried out: the monitor did not answer")
        raise HTTPException(503, f"the monitor did not carry out the command: {error}") from None
    result = commands.CommandResult.model_validate(answer)
    if result.ok:
        audit(command, by, f"done, call {result.call_number}" if result.call_number else "done")
        return answers.CommandAnswer(result="success", callID=result.call_number)
    audit(command, by, f"failed: {result.reason}")
    failed = answers.CommandAnswer(result="failure", reason=result.reason)
    return JSONResponse(failed.model_dump(), status_code=FAILURE_STATUS[result.failure or "refused"])


def audit(command: commands.Command, by: Caller, outcome: str) -> None:
    fields = " ".join(f"{k}={v}" for k, v in command.model_dump(exclude={"command"}).items() if v is not None)
    AUDIT.info("%s %s by %s from %s: %s", command.command, fields, by.key, by.address, outcome)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "the request makes no sense for the PBX (the reason says why)",
        401: "missing or wrong API key",
        403: "a read-only key cannot send commands; makecall: the number may not be dialled",
        404: "no such extension, queue or ring group",
        409: "the PBX refused the command",
        422: "a parameter is missing or malformed",
        429: "makecall: this key placed its calls for the minute (Retry-After says when)",
        503: "the state is not loaded yet, or the monitor did not answer",
    }
    return {code: {"model": answers.ErrorAnswer, "description": described[code]} for code in codes}


READ_ERRORS = _errors(401, 422, 503)
LOOKUP_ERRORS = _errors(401, 404, 422, 503)
COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    **_errors(401, 403, 422, 429, 503),
    **{
        code: {"model": answers.CommandAnswer, "description": f"the command failed ({what})"}
        for code, what in ((400, "a bad request"), (404, "an unknown name"), (409, "the PBX refused"))
    },
}
