"""The dashboard's recent chains: a bounded window of the call chains this api replica has seen
(their call events and recordings), searchable by caller, extension, chain id and date. Pure.

The window lives in the replica's memory: it holds what arrived since the replica started, at
most `size` chains and none whose last event is a day older than the newest event seen.
"""

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from shared.event_base import Event
from shared.events import CallAnswered, CallEnded, CallEvent, RecordingReady

KEPT_FOR = timedelta(hours=24)
EVENTS_KEPT = 200  # per chain


@dataclass
class Chain:
    chain_id: str
    started_at: datetime
    direction: str
    caller: str
    did: str
    extensions: list[str] = field(default_factory=list)
    answered: bool = False
    ended_at: datetime | None = None
    last_at: datetime | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    recordings: list[dict[str, Any]] = field(default_factory=list)

    def take(self, event: CallEvent) -> None:
        self.last_at = event.occurred_at
        extension = getattr(event, "extension", "")
        if extension and extension not in self.extensions:
            self.extensions.append(extension)
        if isinstance(event, RecordingReady):
            self.recordings.append({"link": event.link, "files": list(event.files)})
            return
        self.answered = self.answered or isinstance(event, CallAnswered)
        if isinstance(event, CallEnded) and event.chain_ended:
            self.ended_at = event.occurred_at
        link = getattr(event, "link", None)
        if len(self.events) >= EVENTS_KEPT:  # a chain that rang a hundred phones: its start and its end
            del self.events[EVENTS_KEPT // 2]
        self.events.append(
            {"type": event.type, "at": event.occurred_at.isoformat(), "link": link, "extension": extension}
        )

    def matches(self, caller: str, extension: str, chain_id: str, day: date | None) -> bool:
        return (
            (not caller or caller in self.caller)
            and (not extension or extension in self.extensions)
            and (not chain_id or chain_id in self.chain_id)
            and (day is None or self.started_at.date() == day)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "direction": self.direction,
            "caller": self.caller,
            "did": self.did,
            "extensions": self.extensions,
            "answered": self.answered,
            "events": self.events,
            "recordings": self.recordings,
        }


class RecentChains:
    def __init__(self, size: int) -> None:
        self._size = size
        self._chains: OrderedDict[str, Chain] = OrderedDict()  # oldest first

    def __len__(self) -> int:
        return len(self._chains)

    def handle(self, event: Event) -> None:
        """Take a call event or a recording in; everything else is not about chains."""
        if not isinstance(event, CallEvent) or self._size == 0:
            return
        chain = self._chains.get(event.chain_id)
        if chain is None:
            if isinstance(event, RecordingReady):
                return  # of a chain that ended before this replica started
            chain = Chain(event.chain_id, event.occurred_at, event.direction, event.external_number, "")
            chain.did = event.did_number or event.did_name
            self._chains[event.chain_id] = chain
        chain.take(event)
        self._forget(event.occurred_at)

    def _forget(self, now: datetime) -> None:
        while len(self._chains) > self._size:
            self._chains.popitem(last=False)
        while self._chains:  # the order is of arrival: the later ones are younger, mostly
            chain_id, chain = next(iter(self._chains.items()))
            if chain.last_at is not None and now - chain.last_at <= KEPT_FOR:
                break
            del self._chains[chain_id]

    def search(
        self,
        *,
        caller: str = "",
        extension: str = "",
        chain_id: str = "",
        day: date | None = None,
        limit: int = 100,
    ) -> list[Chain]:
        """The newest chains first that match every field given."""
        found = []
        for chain in reversed(self._chains.values()):
            if chain.matches(caller, extension, chain_id, day):
                found.append(chain)
                if len(found) >= limit:
                    break
        return found
