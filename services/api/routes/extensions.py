"""One extension: its settings and memberships, its state."""

from fastapi import APIRouter

from shared.keys import READ

from .. import answers
from ..deps import LOOKUP_ERRORS, Number, State, extension_of

router = APIRouter(tags=["extensions"], dependencies=READ, responses=LOOKUP_ERRORS)


@router.get("/ext.info.get")
async def extension_info(pbx: State, num: Number) -> answers.ExtensionInfo:
    """An extension's settings and memberships."""
    return answers.extension_info(pbx, extension_of(pbx, num))


@router.get("/ext.state.get")
async def extension_state(pbx: State, num: Number) -> answers.ExtensionState:
    """An extension's registration, presence, forwarding profile and queue status."""
    return answers.extension_state(pbx, extension_of(pbx, num))
