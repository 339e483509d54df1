"""Calls in progress: how many, with their legs, with their state and parties."""

from fastapi import APIRouter, Response

from shared.keys import READ

from .. import answers
from ..deps import READ_ERRORS, State, Wired

router = APIRouter(tags=["calls"], dependencies=READ, responses=READ_ERRORS)


@router.get("/pbx.calls.get")
async def calls_count(pbx: State) -> answers.CountAnswer:
    """The number of calls in progress (internal ones included)."""
    return answers.CountAnswer(result=len(pbx.calls))


@router.get("/pbx.ac.get", response_model=answers.ActiveCallsAnswer)
async def active_calls(pbx: State, wired: Wired) -> Response:
    """Calls in progress with their legs (a leg: whose it is, to whom, and its status).

    `direction`: `Inbound` an outside caller reaching an extension, `FromExternal` one not at
    an extension yet (IVR, queue), `Outbound` an extension dialling out, `Internal` extension
    to extension, `FromInternal` a click-to-dial still ringing its own extension, `External`
    outside to outside."""
    return Response(wired.active.json(pbx), media_type="application/json")


@router.get("/pbx.callsinfo.get", response_model=answers.CallsInfoAnswer)
async def calls_info(pbx: State, wired: Wired) -> Response:
    """Calls in progress: state, times and parties.

    `state`: `Initiating` dialling, `Routing` ringing or waiting unanswered, `Rerouting`
    unanswered and moved on from its first destination, `Transferring` blind-transferred and
    ringing its new destination, `Talking`, `Unknown` otherwise."""
    return Response(wired.info.json(pbx), media_type="application/json")
