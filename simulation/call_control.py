"""What 3CX Call Control shows of the simulator's calls (docs/3cx.md §1.6, §4): the fake 3CX
publishes the simulator's updates through this view. Pure."""

from dataclasses import replace
from datetime import datetime

from services.monitor.threecx.assembler import WAITING_DN_TYPES
from services.monitor.updates import EXTENSION, EXTERNAL_LINE, ParticipantUpdate, PbxUpdate


class CallControlView:
    """What 3CX Call Control shows of the simulator's participants: the extensions' own, and a
    caller waiting in a queue or IVR as a participant of that DN. The trunk, and so the external
    party's own leg, is never shown (docs/3cx.md §1.6, §4)."""

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
        waits = not update.removed and update.party_dn_type in WAITING_DN_TYPES
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
