"""What the call tracker keeps so that a restarted monitor continues each call where it was: per
call in progress its participants, its chain and what was published of it. The monitor saves the
calls an update changed together with the events it made (`outbox.py`, one transaction), so the
saved state and the events sent always agree."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from .call_states import TrackedCall
from .chains import Chain
from .updates import ParticipantUpdate


class SavedCall(BaseModel):
    model_config = ConfigDict(frozen=True)

    callid: int
    started: datetime
    members: list[ParticipantUpdate]
    chain: Chain | None
    chain_id: str
    did: str
    answered: datetime | None
    queues: tuple[str, ...] = ()


def save(call: TrackedCall) -> str:
    return SavedCall(
        callid=call.callid,
        started=call.started,
        members=list(call.members.values()),
        chain=call.chain,
        chain_id=call.chain_id,
        did=call.did,
        answered=call.answered,
        queues=call.queues,
    ).model_dump_json()


def load(text: str) -> TrackedCall:
    """The call as saved; its leg views are for the tracker to make again."""
    saved = SavedCall.model_validate_json(text)
    return TrackedCall(
        callid=saved.callid,
        started=saved.started,
        members={(p.dn, p.id): p for p in saved.members},
        chain=saved.chain,
        chain_id=saved.chain_id,
        did=saved.did,
        answered=saved.answered,
        queues=saved.queues,
    )
