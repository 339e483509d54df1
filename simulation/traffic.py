"""The traffic generator: endless, realistic, repeatable scenario steps for the simulator.

Calls arrive as a Poisson process at `calls_per_minute`; the first, a queue call, within a
second, so that a fresh start shows a ringing phone at once. While `max_concurrent` calls are
in progress a new arrival is turned away (counted in `blocked`). Each call follows one of the
flows below, chosen by weight: queue calls (answered, missed, callback), direct DID calls, ring
groups, an IVR that routes to a queue, outbound calls (answered or not), blind and attended
transfers, internal calls, with reconnects and holds sprinkled in. Now and then an extension
changes state (registration, forwarding profile, queue login). The same seed gives the same
steps.
"""

import heapq
import random
from collections.abc import Callable, Iterator
from itertools import count
from typing import Any

from shared.directory import Directory

from .scenario import ScenarioError, Step

Script = list[tuple[float, str, dict[str, Any]]]


class TrafficGenerator:
    def __init__(
        self,
        directory: Directory,
        *,
        seed: int,
        calls_per_minute: float,
        max_concurrent: int,
        state_changes: float = 0.05,
        talk: tuple[float, float] = (20.0, 240.0),
    ) -> None:
        """`talk`: the shortest and the longest conversation, in seconds."""
        if (
            len(directory.extensions) < 2
            or not directory.lines
            or not any(line.dids for line in directory.lines)
        ):
            raise ScenarioError("the traffic generator needs at least two extensions and a line with a DID")
        self._rng = random.Random(seed)
        self._rate = calls_per_minute / 60.0
        self._max = max_concurrent
        self._state_changes = state_changes
        self._talk_range = talk
        self._extensions = [e.number for e in directory.extensions]
        self._place = {number: n for n, number in enumerate(self._extensions)}
        self._queues = [(q.number, list(q.agents)) for q in directory.queues if q.agents]
        self._groups = [(g.number, list(g.members)) for g in directory.groups if g.members]
        self._ivrs = [i.number for i in directory.ivrs]
        self._dids = [d.name for line in directory.lines for d in line.dids]
        self._heap: list[tuple[float, int, Step]] = []
        self._order = count(1)
        self._labels = count(1)
        self._ends: list[float] = []
        self.started = 0
        self.blocked = 0
        flows: list[tuple[int, Callable[[str], Script]]] = [
            (30, self._queue_answered),
            (8, self._queue_missed),
            (14, self._direct),
            (15, self._outbound),
            (7, self._blind_transfer),
            (5, self._attended_transfer),
            (4, self._internal),
        ]
        if self._groups:
            flows.append((8, self._ring_group))
        if self._ivrs and self._queues:
            flows.append((5, self._ivr))
        self._flows = [f for _, f in flows]
        self._weights = [w for w, _ in flows]

    def steps(self, until: float | None = None) -> Iterator[tuple[float, Step]]:
        """(seconds after start, step), in time order: for ever, or with no arrivals after `until`
        seconds and ending once the calls in progress have ended. At 0 calls a minute: none."""
        if self._rate <= 0:
            return
        arrival = min(self._rng.expovariate(self._rate), 1.0)  # a fresh start shows a call at once:
        self._arrive(arrival, self._queue_answered)  # a phone rings within seconds
        arrival += self._rng.expovariate(self._rate)
        while until is None or arrival <= until or self._heap:
            if self._heap and (self._heap[0][0] <= arrival or (until is not None and arrival > until)):
                t, _, step = heapq.heappop(self._heap)
                yield t, step
                continue
            self._arrive(arrival)
            arrival += self._rng.expovariate(self._rate)

    def _arrive(self, t: float, flow: Callable[[str], Script] | None = None) -> None:
        rng = self._rng
        if flow is None and rng.random() < self._state_changes:
            self._schedule(t, self._state_change())
            return
        while self._ends and self._ends[0] <= t:
            heapq.heappop(self._ends)
        if len(self._ends) >= self._max:
            self.blocked += 1
            return
        label = f"G{next(self._labels)}"
        script = (flow or rng.choices(self._flows, self._weights)[0])(label)
        self._schedule(t, script)
        heapq.heappush(self._ends, t + max(offset for offset, _, _ in script))
        self.started += 1

    def _schedule(self, t: float, script: Script) -> None:
        for offset, do, fields in script:
            index = next(self._order)
            heapq.heappush(self._heap, (t + offset, index, Step(index, t + offset, do, fields)))

    # --- building blocks ---------------------------------------------------------------------------

    def _caller(self) -> str:
        return "420" + "".join(self._rng.choice("0123456789") for _ in range(9))

    def _talk(self, script: Script, label: str, at: float, talker: str, *, end: bool = True) -> float:
        """A conversation from `at`: maybe a hold, maybe a reconnect; returns when it ends."""
        rng = self._rng
        talk = rng.uniform(*self._talk_range)
        if rng.random() < 0.15:
            script += [
                (at + talk * 0.3, "hold", {"call": label, "by": talker}),
                (at + talk * 0.5, "resume", {"call": label, "by": talker}),
            ]
        if rng.random() < 0.08:
            script.append((at + talk * 0.6, "reconnect", {"call": label, "dn": talker}))
        if end:
            by = "external" if rng.random() < 0.6 else talker
            script.append((at + talk, "hangup", {"call": label, "by": by}))
        return at + talk

    def _incoming(self, label: str, to: str) -> Script:
        return [
            (
                0.0,
                "incoming",
                {"call": label, "from": self._caller(), "did": self._rng.choice(self._dids), "to": to},
            )
        ]

    def _answered_in(
        self, label: str, to: str, phones: list[str], at: float = 0.0, *, waits: bool = True
    ) -> tuple[Script, str, float]:
        """An incoming call to `to` that rings `phones` and is answered; returns (script, talker, time).
        `waits`: the caller waits a moment first (a queue's greeting); else the phones ring at once,
        as a PBX rings an extension or a ring group the moment a call is routed there (and as 3CX's
        Call Control shows such a call: from its first ring)."""
        rng = self._rng
        script = self._incoming(label, to) if at == 0.0 else []
        ring_at = at + rng.uniform(0.3, 3) if waits else at
        ringing = rng.sample(phones, rng.randint(1, len(phones)))
        talker = rng.choice(ringing)
        answer_at = ring_at + rng.uniform(3, 20)
        script += [
            (ring_at, "ring", {"call": label, "dn": tuple(ringing)}),
            (answer_at, "answer", {"call": label, "dn": talker}),
        ]
        return script, talker, answer_at

    def _entry(self, label: str) -> tuple[Script, str, float]:
        """Queue or direct, answered: where the transfer flows begin."""
        if self._queues and self._rng.random() < 0.6:
            queue, agents = self._rng.choice(self._queues)
            return self._answered_in(label, queue, agents)
        extension = self._rng.choice(self._extensions)
        return self._answered_in(label, extension, [extension], waits=False)

    # --- flows -------------------------------------------------------------------------------------

    def _queue_answered(self, label: str) -> Script:
        if not self._queues:
            return self._direct(label)
        queue, agents = self._rng.choice(self._queues)
        script, talker, at = self._answered_in(label, queue, agents)
        self._talk(script, label, at, talker)
        return script

    def _queue_missed(self, label: str) -> Script:
        if not self._queues:
            return self._direct(label)
        rng = self._rng
        queue, agents = rng.choice(self._queues)
        script = self._incoming(label, queue)
        ring_at = rng.uniform(0.3, 3)
        script.append(
            (ring_at, "ring", {"call": label, "dn": tuple(rng.sample(agents, rng.randint(1, len(agents))))})
        )
        leave = ring_at + rng.uniform(10, 60)
        script.append(
            (leave, "callback", {"call": label})
            if rng.random() < 0.3
            else (leave, "hangup", {"call": label, "by": "external"})
        )
        return script

    def _direct(self, label: str) -> Script:
        rng = self._rng
        extension = rng.choice(self._extensions)
        if rng.random() < 0.15:
            script = self._incoming(label, extension)
            script += [
                (0.0, "ring", {"call": label, "dn": (extension,)}),
                (rng.uniform(10, 30), "hangup", {"call": label, "by": "external"}),
            ]
            return script
        script, talker, at = self._answered_in(label, extension, [extension], waits=False)
        self._talk(script, label, at, talker)
        return script

    def _ring_group(self, label: str) -> Script:
        group, members = self._rng.choice(self._groups)
        script, talker, at = self._answered_in(label, group, members, waits=False)
        self._talk(script, label, at, talker)
        return script

    def _ivr(self, label: str) -> Script:
        rng = self._rng
        queue, agents = rng.choice(self._queues)
        script = self._incoming(label, rng.choice(self._ivrs))
        route_at = rng.uniform(5, 15)
        script.append((route_at, "route", {"call": label, "to": queue}))
        more, talker, at = self._answered_in(label, queue, agents, at=route_at)
        script += more
        self._talk(script, label, at, talker)
        return script

    def _outbound(self, label: str) -> Script:
        rng = self._rng
        extension = rng.choice(self._extensions)
        script: Script = [(0.0, "outgoing", {"call": label, "from": extension, "to": self._caller()})]
        if rng.random() < 0.25:
            script.append((rng.uniform(15, 40), "hangup", {"call": label, "by": extension}))
            return script
        answer_at = rng.uniform(3, 15)
        script.append((answer_at, "answer", {"call": label, "dn": "external"}))
        self._talk(script, label, answer_at, extension)
        return script

    def _blind_transfer(self, label: str) -> Script:
        rng = self._rng
        script, talker, at = self._entry(label)
        at = self._talk(script, label, at, talker, end=False)
        target = self._other_than(talker)
        script += [
            (at, "transfer", {"call": label, "by": talker, "to": target}),
            (at + 0.2, "ring", {"call": label, "dn": (target,)}),
        ]
        if rng.random() < 0.2:
            script.append((at + rng.uniform(15, 30), "hangup", {"call": label, "by": "external"}))
            return script
        answer_at = at + rng.uniform(2, 10)
        script.append((answer_at, "answer", {"call": label, "dn": target}))
        self._talk(script, label, answer_at, target)
        return script

    def _other_than(self, extension: str) -> str:
        """Any extension but `extension`, as `choice` of the list without it picks (the same draw,
        without building that list for every transfer)."""
        pick = self._rng.choice(range(len(self._extensions) - 1))
        return self._extensions[pick + (pick >= self._place[extension])]

    def _attended_transfer(self, label: str) -> Script:
        rng = self._rng
        script, talker, at = self._entry(label)
        at = self._talk(script, label, at, talker, end=False)
        target = self._other_than(talker)
        consult = f"{label}c"
        ring_at, answer_at = at + 0.5, at + rng.uniform(2, 8)
        complete_at = answer_at + rng.uniform(5, 20)
        script += [
            (at, "consult", {"call": label, "by": talker, "to": target, "consult": consult}),
            (ring_at, "ring", {"call": consult, "dn": (target,)}),
            (answer_at, "answer", {"call": consult, "dn": target}),
            (complete_at, "complete", {"call": label, "consult": consult}),
        ]
        self._talk(script, label, complete_at, target)
        return script

    def _internal(self, label: str) -> Script:
        rng = self._rng
        caller, callee = rng.sample(self._extensions, 2)
        answer_at = rng.uniform(2, 10)
        return [
            (0.0, "internal", {"call": label, "from": caller, "to": callee}),
            (0.2, "ring", {"call": label, "dn": (callee,)}),
            (answer_at, "answer", {"call": label, "dn": callee}),
            (answer_at + rng.uniform(10, 120), "hangup", {"call": label, "by": rng.choice((caller, callee))}),
        ]

    def _state_change(self) -> Script:
        rng = self._rng
        extension = rng.choice(self._extensions)
        back = rng.uniform(30, 300)
        kind = rng.randrange(3)
        if kind == 0:
            return [(0.0, "unregister", {"dn": extension}), (back, "register", {"dn": extension})]
        if kind == 1 or not self._queues:
            profile = rng.choice(("Away", "Out of office", "Custom 1", "Custom 2"))
            return [
                (0.0, "set_forwarding", {"dn": extension, "profile": profile}),
                (back, "set_forwarding", {"dn": extension, "profile": "Available"}),
            ]
        queue, agents = rng.choice(self._queues)
        agent = rng.choice(agents)
        return [
            (0.0, "queue_login", {"dn": agent, "queue": queue, "on": False}),
            (back, "queue_login", {"dn": agent, "queue": queue, "on": True}),
        ]
