"""Commands to the PBX, carried out by the monitor (keys with command rights only)."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import JSONResponse

from shared import commands
from shared.directory import FORWARDING_PROFILES, ForwardingProfile
from shared.keys import COMMAND

from .. import answers
from ..deps import COMMAND_ERRORS, Calling, LogIn, Number, OnOff, Wired, Wiring, audit, send, state

router = APIRouter(tags=["commands"], dependencies=COMMAND, responses=COMMAND_ERRORS)
Party = Annotated[str, Query(min_length=1, max_length=32)]
Profile = Annotated[
    str, Query(max_length=32, description="the profile: " + ", ".join(FORWARDING_PROFILES) + " (any case)")
]


@router.get("/makecall")
async def makecall(
    wired: Wired,
    by: Calling,
    first: Annotated[Party, Query(description="the extension that rings first")],
    second: Annotated[Party, Query(description="then dialled: an extension or outside number")],
) -> answers.CommandAnswer:
    """Click to dial: `first`'s phone rings; once it is picked up, the PBX dials `second`: a
    number of the PBX, or an outside number that `[api] dial_allow` allows and `dial_deny` does
    not refuse (403 otherwise); at most `makecall_per_minute` per key (429 otherwise)."""
    command = commands.MakeCall(first=first, second=second)
    refusal = wired.dialling.refusal(second, await own_numbers(wired))
    wait = 0 if refusal else wired.makecalls.take(by.key)
    if wait:
        refusal = f"this key placed {wired.settings.makecall_per_minute:g} calls in the last minute"
    if refusal:
        audit(command, by, f"refused: {refusal}")
        raise HTTPException(429 if wait else 403, refusal, {"Retry-After": str(wait)} if wait else None)
    return await send(wired, command, by)  # type: ignore[no-any-return]


async def own_numbers(wired: Wiring) -> set[str]:
    """The PBX's own numbers (extensions, queues, ring groups, IVRs); 503 until the state is in."""
    directory = (await state(wired)).directory
    dns = (*directory.extensions, *directory.queues, *directory.groups, *directory.ivrs)
    return {dn.number for dn in dns}


@router.get("/ext.fwd.set")
async def set_forwarding(wired: Wired, by: Calling, num: Number, status: Profile) -> answers.CommandAnswer:
    """Switch an extension's forwarding profile."""
    profile = _profile(status)
    if profile is None:
        reason = f"unknown status {status!r}: one of {', '.join(FORWARDING_PROFILES)}"
        failed = answers.CommandAnswer(result="failure", reason=reason)
        return JSONResponse(failed.model_dump(), status_code=400)  # type: ignore[return-value]
    return await send(wired, commands.SetForwarding(extension=num, profile=profile), by)  # type: ignore[no-any-return]


@router.get("/ext.queueglobal.set")
async def set_queue_global(wired: Wired, by: Calling, num: Number, log: LogIn) -> answers.CommandAnswer:
    """Log an agent in to (`on`) or out of (`off`) all its queues at once."""
    request = commands.SetQueueLogin(extension=num, queue="all", logged_in=log == "on")
    return await send(wired, request, by)  # type: ignore[no-any-return]


@router.get("/ext.queue.set")
async def set_queue(
    wired: Wired,
    by: Calling,
    num: Number,
    queue: Annotated[str, Query(min_length=1, max_length=32, description="the queue's number")],
    log: LogIn,
) -> answers.CommandAnswer:
    """Log an agent in to (`on`) or out of (`off`) one queue."""
    if queue == "all":
        raise HTTPException(422, "queue: use ext.queueglobal.set for all queues")
    request = commands.SetQueueLogin(extension=num, queue=queue, logged_in=log == "on")
    return await send(wired, request, by)  # type: ignore[no-any-return]


@router.get("/ext.options.set")
async def set_options(
    wired: Wired,
    by: Calling,
    num: Number,
    enabled: Annotated[OnOff | None, Query(description="the extension may be used at all")] = None,
    external: Annotated[OnOff | None, Query(description="it may make and take outside calls")] = None,
    recording: Annotated[
        Literal["off", "external", "all"] | None, Query(description="which calls are recorded")
    ] = None,
) -> answers.CommandAnswer:
    """Change one to three of an extension's options; the ones not given stay as they are."""
    if enabled is None and external is None and recording is None:
        raise HTTPException(422, "give at least one of enabled, external, recording")
    request = commands.SetOptions(
        extension=num,
        enabled=None if enabled is None else enabled == "on",
        external=None if external is None else external == "on",
        recording=recording,
    )
    return await send(wired, request, by)  # type: ignore[no-any-return]


def _profile(status: str) -> ForwardingProfile | None:
    wanted = status.strip().lower()
    for profile in FORWARDING_PROFILES:
        if profile.lower() == wanted:
            return profile  # type: ignore[return-value]
    return None
