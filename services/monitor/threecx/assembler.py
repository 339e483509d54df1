"""From what 3CX Call Control shows to the updates the call tracker reads. Pure: no I/O, no clock.

3CX shows the participants of monitored DNs only: the extensions on the API client and, where
they are monitored, queues and IVRs (a caller waiting there is a participant of that DN). The
trunk is never monitored, so the external party's own leg, which the tracker follows a chain by
(`services/monitor/updates.py`), is put together here from what the visible participants say
about their other party (`party_dn_type == "Wexternalline"`):

- the chain's direction: outbound when the first participant that shows the outside number is
  an extension dialling it, inbound otherwise;
- where the call is (`party_dn`): the extension talking to it (the latest to connect), else the
  queue or IVR it waits in, else the queue or ring group the ringing phones ring for
  (`on_behalf_of_dn`), else a ringing phone; the transferor (`referred_by_dn`) from the latest
  participant that names one;
- the DID: `party_did`, or when 3CX leaves it empty (it does on v20), the trunk's DID from XAPI.

When no visible participant shows the outside party any more, the external leg is not removed at
once: a blind transfer or a queue's next round of phones fills the call again within a moment,
and the leg that follows it is stamped with the moment the call emptied (the transfer), not the
moment the new phone rang. `expire(now)` removes the legs whose call stayed empty for `grace`
seconds, stamped with the moment the last participant left. Order follows the simulator's: the
leg comes before the participant that opens the chain, and before any phone that starts ringing
(the call was routed or transferred there first, which re-points it); any other participant
passes before the leg changes (an attended transfer's new talker connects, then the leg follows
it).
"""

import heapq
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..updates import EXTENSION, EXTERNAL_LINE, IVR, QUEUE, ParticipantUpdate, PbxUpdate, Status

WAITING_DN_TYPES = frozenset({QUEUE, IVR})


@dataclass(slots=True)
class _Call:
    members: dict[tuple[str, int], ParticipantUpdate] = field(default_factory=dict)
    leg: ParticipantUpdate | None = None
    outbound: bool | None = None
    empty_since: datetime | None = None


class CallAssembler:
    def __init__(self, *, dids: dict[str, str] | None = None, grace: float = 2.0) -> None:
        self._dids = dids or {}  # trunk DN → its DID, for when 3CX sends an empty party_did
        self._grace = timedelta(seconds=grace)
        self._calls: dict[int, _Call] = {}
        self._where: dict[tuple[str, int], int] = {}  # each visible participant → its call number
        # (when a call emptied, its number), a heap: what `expire` looks at, so that it does not
        # go through every call at every update; an entry whose call has filled again since, or
        # ended, is passed over
        self._emptied: list[tuple[datetime, int]] = []

    def set_dids(self, dids: dict[str, str]) -> None:
        self._dids = dict(dids)

    def members(self) -> dict[tuple[str, int], ParticipantUpdate]:
        """Every visible participant now (to compare with a fresh snapshot)."""
        return {key: p for call in self._calls.values() for key, p in call.members.items()}

    def member(self, dn: str, number: int) -> ParticipantUpdate | None:
        """The visible participant `number` of `dn`, if there is one."""
        callid = self._where.get((dn, number))
        return None if callid is None else self._calls[callid].members.get((dn, number))

    def resume(self, participants: list[ParticipantUpdate]) -> None:
        """Begin from what a restarted monitor's tracker saw: the visible participants, and each
        call's external leg (its direction with it). `check(at)` after the first snapshot."""
        for p in participants:
            call = self._calls.setdefault(p.callid, _Call())
            if p.dn_type == EXTERNAL_LINE and p.id == -p.callid:
                call.leg, call.outbound = p, p.originated_by_type == EXTENSION
            else:
                call.members[(p.dn, p.id)] = p
                self._where[(p.dn, p.id)] = p.callid

    def check(self, at: datetime) -> list[PbxUpdate]:
        """Each call's external leg again, as its participants have it now (a resumed call whose
        participants all went while the monitor was away empties, and its leg expires)."""
        return [leg for callid, call in list(self._calls.items()) for leg in self._relink(call, callid, at)]

    def apply(self, p: ParticipantUpdate) -> list[PbxUpdate]:
        """One visible participant's upsert or removal; what the tracker should read for it."""
        key = (p.dn, p.id)
        if p.removed:
            call = self._calls.get(p.callid)
            if call is None or call.members.pop(key, None) is None:
                return []
            self._where.pop(key, None)
            out: list[PbxUpdate] = [p] if p.dn_type == EXTENSION else []
            return out + self._relink(call, p.callid, p.at)
        call = self._calls.setdefault(p.callid, _Call())
        prior = call.members.get(key)
        if prior is not None and prior.same_entity(p):
            return []  # 3CX sends the same Upsert twice
        call.members[key] = p
        self._where[key] = p.callid
        passed: list[PbxUpdate] = [p] if p.dn_type == EXTENSION else []
        opens = call.leg is None  # the chain starts with this participant: its leg comes first
        relinked = self._relink(call, p.callid, p.at)
        starts_ringing = p.status == "Ringing" and prior is None  # the call was sent here, then it rang
        return relinked + passed if opens or starts_ringing else passed + relinked

    def expire(self, now: datetime) -> list[ParticipantUpdate]:
        """The external legs of calls empty for `grace`: removed, as of when they emptied."""
        gone: list[ParticipantUpdate] = []
        while self._emptied and now - self._emptied[0][0] >= self._grace:
            since, callid = heapq.heappop(self._emptied)
            call = self._calls.get(callid)
            if call is None or call.empty_since != since:
                continue  # filled again, or ended, since
            if call.leg is not None:
                gone.append(replace(call.leg, at=call.empty_since, removed=True))
            if call.members:
                call.leg, call.empty_since = None, None
            else:
                del self._calls[callid]
        return gone

    @staticmethod
    def ended_waiting_in_a_queue(leg: ParticipantUpdate) -> bool:
        """A removed leg whose caller gave up (or ordered a callback) in a queue, never answered:
        Call Control cannot tell which, the queue callback report can."""
        return leg.removed and leg.party_dn_type == QUEUE and leg.status != "Connected"

    def next_expiry(self) -> datetime | None:
        """When `expire` will next have something to do."""
        while self._emptied:
            since, callid = self._emptied[0]
            call = self._calls.get(callid)
            if call is not None and call.empty_since == since:
                return since + self._grace
            heapq.heappop(self._emptied)
        return None

    # --- the external leg ---------------------------------------------------------------------------

    def _relink(self, call: _Call, callid: int, at: datetime) -> list[PbxUpdate]:
        carriers = [p for p in call.members.values() if p.party_dn_type == EXTERNAL_LINE]
        if not carriers:
            if call.leg is not None and call.empty_since is None:
                call.empty_since = at
                heapq.heappush(self._emptied, (at, callid))
            elif call.leg is None and not call.members:
                del self._calls[callid]
            return []
        # filled again within the grace period: handed on (a blind transfer) when it emptied
        handed_on, call.empty_since = call.empty_since, None
        if call.outbound is None:
            first = carriers[0]
            call.outbound = first.dn_type == EXTENSION and first.status == "Dialing"
        leg = self._leg(call, callid, carriers, handed_on or at)
        if call.leg is not None and call.leg.same_entity(leg):
            return []
        call.leg = leg
        return [leg]

    def _leg(
        self, call: _Call, callid: int, carriers: list[ParticipantUpdate], at: datetime
    ) -> ParticipantUpdate:
        phones = [p for p in carriers if p.dn_type == EXTENSION]
        talking = [p for p in phones if p.status == "Connected"]
        waiting = [p for p in carriers if p.dn_type in WAITING_DN_TYPES]
        ringing = [p for p in phones if p.status == "Ringing"]
        if talking:
            where, kind = talking[-1].dn, EXTENSION
        elif waiting:
            where, kind = waiting[-1].dn, waiting[-1].dn_type
        elif ringing and ringing[-1].on_behalf_of_dn:
            where, kind = ringing[-1].on_behalf_of_dn, ringing[-1].on_behalf_of_type
        elif phones:
            where, kind = phones[-1].dn, EXTENSION
        else:
            where, kind = carriers[-1].dn, carriers[-1].dn_type
        referred = [p for p in carriers if p.referred_by_dn]
        outside = carriers[0]
        trunk = outside.party_dn
        dialler = next((p.dn for p in phones if p.status == "Dialing"), where)
        status: Status = "Connected" if talking else "Dialing" if call.outbound else "Ringing"
        return ParticipantUpdate(
            at=at,
            dn=trunk,
            dn_type=EXTERNAL_LINE,
            id=-callid,
            callid=callid,
            legid=0,
            status=status,
            party_caller_id=outside.party_caller_id,
            party_dn=where,
            party_dn_type=kind,
            party_did="" if call.outbound else outside.party_did or self._dids.get(trunk, ""),
            originated_by_dn=dialler if call.outbound else trunk,
            originated_by_type=EXTENSION if call.outbound else EXTERNAL_LINE,
            referred_by_dn=referred[-1].referred_by_dn if referred else "",
            referred_by_type=referred[-1].referred_by_type if referred else "None",
        )
