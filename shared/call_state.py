"""Calls in progress, internal ones too (the API's `pbx.ac.get` and `pbx.callsinfo.get`): the
`pbx.call` event the monitor publishes after each change of a call."""

from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field
from pydantic.dataclasses import dataclass

from .event_base import Event

PartyType = Literal["extension", "queue", "group", "ivr", "line", "external"]
LegStatus = Literal["Dialing", "Ringing", "Connected"]
CallStateDirection = Literal["FromExternal", "FromInternal", "Inbound", "Outbound", "External", "Internal"]
CallStateName = Literal["Unknown", "Initiating", "Routing", "Talking", "Transferring", "Rerouting"]


# The parties and legs are slotted dataclasses rather than models: the monitor and the api hold
# one for each party and leg of every call in progress, ~64 bytes each beside their strings against
# ~450 for a model (bench/monitor_memory.py); they validate, serialize and document themselves alike.
FORBID = ConfigDict(extra="forbid")


@dataclass(frozen=True, slots=True, kw_only=True, config=FORBID)
class CallParty:
    number: str
    name: str = ""
    type: PartyType


@dataclass(frozen=True, slots=True, kw_only=True, config=FORBID)
class CallLeg:
    """One participant of a call (a 3CX active connection): whose leg, and to whom."""

    dn: str
    dn_type: PartyType
    status: LegStatus
    external_party: Annotated[str, Field(description="the number at the other end of this leg")]


class CallState(Event):
    """Any call in progress, internal ones too, after each change; `ended` when its last leg left.

    direction: `Inbound` an external caller reaching an extension (ringing or talking),
    `FromExternal` one not at an extension yet (IVR, queue, ring group), `Outbound` an extension
    dialling out, `Internal` extension to extension, `FromInternal` an extension whose call rings
    no one yet (a click-to-dial ringing its own phone first), `External` external to external.
    state: `Initiating` dialling (nobody answered yet), `Routing` ringing or waiting unanswered,
    `Rerouting` unanswered and moved on from its first destination, `Transferring` blind-transferred
    and ringing its new destination, `Talking` someone talks with the owner, else `Unknown`."""

    type: Literal["pbx.call"] = "pbx.call"
    call_number: int
    chain_id: str = Field("", description="the classic chain id when the call has an external party")
    direction: CallStateDirection
    state: CallStateName
    started_at: AwareDatetime
    answered_at: AwareDatetime | None = None
    did: str = ""
    owner: CallParty | None = Field(description="who placed the call")
    talk_to: tuple[CallParty, ...] = ()
    routing_to: tuple[CallParty, ...] = ()
    legs: tuple[CallLeg, ...] = ()
    queues: tuple[str, ...] = Field((), description="the queues the call has waited in, in order")
    ended: bool = False
