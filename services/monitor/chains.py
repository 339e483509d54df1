"""The classic chain rules (docs/classic-webhooks.md): from the external party's leg and the
extensions' legs of one call, the chain's events. Pure: no I/O, no clock.

- A call with an external-party leg is a *chain*; its id is `YYMMDDhhmmss_N` from the PBX-local
  time its first participant appeared and its call number.
- Direction: the external leg's `originated_by_type` is the trunk for incoming chains.
- `call.ringing` when an extension's leg starts ringing; `user_type` is `queue` when a queue
  rings it (`on_behalf_of_type`), `ext` when the call is routed or transferred to that very
  extension, `other` otherwise (ring group, IVR, forwarding…).
- Link numbers: 0 until the first answer, 1 from it, +1 at every transfer.
- `call.answered` when an extension's leg becomes Connected on an unanswered link (`NotDef`, or
  `Blind` after a blind transfer), or appears Connected with `referred_by_dn` while another
  extension talks (an attended transfer completes: `Accomp`, and the old link ends transferred).
- A blind transfer is the external leg re-pointed (`party_dn`) with a new `referred_by_dn` to a DN
  that is not talking: the answered link ends transferred and an unanswered one opens.
- The chain ends when the external leg is removed. An answered link ends `Ok` at the moment its
  talker left; an unanswered one is `Missed`, reported at the DN the call was routed to (the
  dialling extension for outgoing calls), with `callback_requested` from the removal's reason.
- Durations: talk time from the answer (or completed attended transfer) to the link's end; a
  missed link from its start (arrival, dialling, or the blind transfer that opened it).
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from shared.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallRinging,
    CallStarted,
    RoutedType,
    TransferType,
    UserType,
)

from .updates import EXTENSION, EXTERNAL_LINE, IVR, QUEUE, RING_GROUP, ParticipantUpdate

ROUTED_TYPES: dict[str, RoutedType] = {
    EXTENSION: "extension",
    QUEUE: "queue",
    RING_GROUP: "group",
    IVR: "ivr",
    EXTERNAL_LINE: "external",
}
Emit = Callable[..., None]  # (event class, at, **fields): one event made, numbered and kept


@dataclass(slots=True)
class Chain:
    chain_id: str
    call_number: int
    direction: str
    external: str
    did_name: str
    did_number: str
    routed_to: str
    routed_type: RoutedType
    originator: str
    first_routed: str
    link: int = 0
    link_started: datetime | None = None
    answered_at: datetime | None = None
    talker: str = ""
    talker_left: datetime | None = None
    referral: tuple[str, str] = ("", "")
    next_transfer_type: TransferType = "NotDef"


class ChainRules:
    """The classic events of every chain, made through `emit`."""

    def __init__(self, emit: Emit, zone: ZoneInfo) -> None:
        self._emit = emit
        self._zone = zone
        self.did_names: dict[str, str] = {}  # DID number → its rule's name (from the directory)

    def start(self, callid: int, started: datetime, p: ParticipantUpdate) -> Chain:
        """The chain of call `callid`, opened by its external leg `p`."""
        local = started.astimezone(self._zone)
        inbound = p.originated_by_type == EXTERNAL_LINE
        chain = Chain(
            chain_id=f"{local:%y%m%d%H%M%S}_{callid}",
            call_number=callid,
            direction="inbound" if inbound else "outbound",
            external=p.party_caller_id,
            did_name=self.did_names.get(p.party_did, p.party_did) if inbound else "",
            did_number=p.party_did if inbound else "",
            routed_to=p.party_dn,
            routed_type=ROUTED_TYPES.get(p.party_dn_type, "extension"),
            originator=p.party_dn if not inbound else "",
            first_routed=p.party_dn,
            link_started=started,
        )
        self._call_event(CallStarted, chain, started, routed_to=p.party_dn)
        return chain

    def external_leg(self, chain: Chain, p: ParticipantUpdate) -> None:
        """The external leg moved: routed on, or transferred (blind) by the one who talked."""
        if p.referred_by_dn and (p.referred_by_dn, p.party_dn) != chain.referral:
            chain.referral = (p.referred_by_dn, p.party_dn)
            if chain.answered_at is not None and p.party_dn != chain.talker:
                self._end_link(chain, p.at, transferred=True)
                chain.link += 1
                chain.link_started, chain.answered_at, chain.talker = p.at, None, ""
                chain.next_transfer_type = "Blind"
        chain.routed_to = p.party_dn
        chain.routed_type = ROUTED_TYPES.get(p.party_dn_type, "extension")

    def extension_leg(self, chain: Chain, prior: ParticipantUpdate | None, p: ParticipantUpdate) -> None:
        """An extension's leg of the chain changed: it rings, answers, or takes over."""
        was = prior.status if prior is not None else None
        if p.status == "Ringing" and was != "Ringing" and p.dn != chain.originator:
            user_type = self._user_type(chain, p)
            self._call_event(CallRinging, chain, p.at, link=chain.link, extension=p.dn, user_type=user_type)
        if p.status != "Connected" or was == "Connected":
            return
        if chain.answered_at is None:
            chain.link = max(chain.link, 1)
            self._answered(chain, p, chain.next_transfer_type)
        elif p.dn != chain.talker and p.referred_by_dn and prior is None:
            self._end_link(chain, p.at, transferred=True)
            chain.link += 1
            self._answered(chain, p, "Accomp")
        elif not chain.talker:
            chain.talker, chain.talker_left = p.dn, None

    def talker_left(self, chain: Chain, p: ParticipantUpdate) -> None:
        if p.dn == chain.talker:
            chain.talker_left = p.at

    def end(self, chain: Chain, p: ParticipantUpdate) -> None:
        """The external leg is gone: the chain ends with its current link."""
        self._end_link(chain, p.at, transferred=False, chain_ended=True, callback=p.reason == "callback")

    def _user_type(self, chain: Chain, p: ParticipantUpdate) -> UserType:
        if p.on_behalf_of_type == QUEUE:
            return "queue"
        if not p.on_behalf_of_dn and p.dn == chain.routed_to:
            return "ext"
        return "other"

    def _answered(self, chain: Chain, p: ParticipantUpdate, transfer_type: TransferType) -> None:
        chain.answered_at, chain.talker, chain.talker_left = p.at, p.dn, None
        chain.next_transfer_type = "NotDef"
        self._call_event(
            CallAnswered, chain, p.at, link=chain.link, extension=p.dn, transfer_type=transfer_type
        )

    def _end_link(
        self,
        chain: Chain,
        at: datetime,
        *,
        transferred: bool,
        chain_ended: bool = False,
        callback: bool = False,
    ) -> None:
        ends = {"link": chain.link, "transferred": transferred, "chain_ended": chain_ended}
        if chain.answered_at is not None:
            ended = chain.talker_left or at
            talked = max((ended - chain.answered_at).total_seconds(), 0.0)
            extension = chain.talker or chain.routed_to
            self._call_event(
                CallEnded,
                chain,
                at,
                **ends,
                extension=extension,
                answered=True,
                duration=talked,
                routed_type="extension",
            )
            return
        assert chain.link_started is not None
        waited = max((at - chain.link_started).total_seconds(), 0.0)
        self._call_event(
            CallEnded,
            chain,
            at,
            **ends,
            extension=chain.routed_to,
            answered=False,
            duration=waited,
            routed_type=chain.routed_type,
            callback_requested=callback,
        )

    def _call_event(self, kind: type[CallEvent], chain: Chain, at: datetime, **fields: Any) -> None:
        self._emit(
            kind,
            at,
            chain_id=chain.chain_id,
            call_number=chain.call_number,
            direction=chain.direction,
            external_number=chain.external,
            did_name=chain.did_name,
            did_number=chain.did_number,
            **fields,
        )
