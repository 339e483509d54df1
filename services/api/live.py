"""The dashboard's Live page as one JSON answer: calls in progress, queues, extensions. Pure.

`QueueDay` counts each queue's calls of the day from the `pbx.call` events: a call counts for
the queues it waited in (its `queues`, kept by the monitor: the states it went through may have
been gathered into one); answered when someone took it (within `SERVICE_LEVEL` seconds of its
start: in the service level), missed when it ended unanswered. It counts what this replica saw
since it started (or since midnight, PBX time).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any

from shared.call_state import CallParty, CallState
from shared.directory import Extension
from shared.event_base import Event
from shared.pbx_state import PbxState

SERVICE_LEVEL = 20.0  # seconds: the usual "answered within 20 s"
WAITING = frozenset({"Routing", "Rerouting", "Transferring", "Initiating"})


@dataclass
class Tally:
    answered: int = 0
    missed: int = 0
    in_time: int = 0


class QueueDay:
    def __init__(self, zone: tzinfo = UTC) -> None:
        self.zone = zone  # the PBX's: its days begin at its midnight
        self.day: date | None = None
        self.tallies: dict[str, Tally] = defaultdict(Tally)
        self._waiting: dict[int, set[str]] = {}  # call number → the queues it waited in

    def handle(self, event: Event) -> None:
        if not isinstance(event, CallState):
            return
        today = event.occurred_at.astimezone(self.zone).date()
        if today != self.day:  # a new day: what waited on the last one goes too
            self.day, self.tallies, self._waiting = today, defaultdict(Tally), {}
        queues = self._waiting.pop(event.call_number, set())
        queues |= {p.number for p in event.routing_to if p.type == "queue"} | set(event.queues)
        if not queues:
            return
        if not (event.answered_at or event.ended):
            self._waiting[event.call_number] = queues
            return
        for queue in queues:
            tally = self.tallies[queue]
            if event.answered_at is None:
                tally.missed += 1
                continue
            tally.answered += 1
            tally.in_time += (event.answered_at - event.started_at).total_seconds() <= SERVICE_LEVEL


def live_view(state: PbxState, day: QueueDay, now: datetime) -> dict[str, Any]:
    return {
        "now": now.isoformat(),
        "calls": [_call(call) for call in sorted(state.calls.values(), key=lambda c: c.started_at)],
        "queues": [_queue(state, day, q.number, q.name, q.agents, now) for q in state.queues],
        "extensions": [_extension(state, e) for e in state.extensions.values()],
    }


def _call(call: CallState) -> dict[str, Any]:
    return {
        "call_number": call.call_number,
        "chain_id": call.chain_id,
        "direction": call.direction,
        "state": call.state,
        "started_at": call.started_at.isoformat(),
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "did": call.did,
        "caller": _named(call.owner) if call.owner else "",
        "talking": [_named(p) for p in call.talk_to],
        "ringing": [_named(p) for p in call.routing_to],
    }


def _queue(
    state: PbxState, day: QueueDay, number: str, name: str, agents: tuple[str, ...], now: datetime
) -> dict[str, Any]:
    waiting = [
        c
        for c in state.calls.values()
        if c.state in WAITING and any(p.number == number for p in c.routing_to)
    ]
    statuses = [_agent(state, state.extensions.get(a), number) for a in agents]
    tally = day.tallies.get(number, Tally())
    answered_or_missed = tally.answered + tally.missed
    return {
        "number": number,
        "name": name,
        "waiting": len(waiting),
        "longest_wait": max(((now - c.started_at).total_seconds() for c in waiting), default=0.0),
        "free": statuses.count("free"),
        "busy": statuses.count("busy"),
        "logged_out": statuses.count("logged out"),
        "answered": tally.answered,
        "missed": tally.missed,
        "service_level": round(tally.in_time / answered_or_missed, 3) if answered_or_missed else None,
    }


def _agent(state: PbxState, extension: Extension | None, queue: str) -> str:
    if extension is None or not extension.registered or not extension.queue_logged_in:
        return "logged out"
    if queue in extension.logged_out_queues:
        return "logged out"
    return "busy" if extension.number in state.busy else "free"


def _extension(state: PbxState, extension: Extension) -> dict[str, Any]:
    return {
        "number": extension.number,
        "name": extension.name,
        "registered": extension.registered,
        "busy": extension.number in state.busy,
        "profile": extension.profile,
    }


def _named(party: CallParty) -> str:
    return f"{party.name} ({party.number})" if party.name else party.number
