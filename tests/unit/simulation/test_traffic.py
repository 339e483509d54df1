"""The traffic generator: valid, repeatable, capped, and as varied as the issue asks."""

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from services.monitor.tracker import CallTracker
from shared.clock import VirtualClock
from shared.event_base import Event
from shared.events import CallAnswered, CallEnded, CallEvent, CallRinging, CallStarted
from shared.settings import Settings
from simulation.configured import traffic_timeline
from simulation.scenario import default_directory
from simulation.simulator import PbxSimulator
from simulation.traffic import TrafficGenerator

START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def generate(
    seed: int, minutes: float = 240, rate: float = 30, cap: int = 25
) -> tuple[TrafficGenerator, list]:  # type: ignore[type-arg]
    generator = TrafficGenerator(default_directory(), seed=seed, calls_per_minute=rate, max_concurrent=cap)
    return generator, list(generator.steps(until=minutes * 60))


def run(steps: list) -> tuple[list[Event], int]:  # type: ignore[type-arg]
    simulator = PbxSimulator(default_directory(), first_call_number=1)
    tracker = CallTracker(default_directory(), zone=ZoneInfo("UTC"), source="traffic")
    events: list[Event] = []
    most = 0
    for t, step in steps:
        for update in simulator.apply(step, START + timedelta(seconds=t)):  # raises on any invalid step
            events += tracker.apply(update)
        most = max(most, simulator.active_calls)
    return events, most


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    _, first = generate(7, minutes=30)
    _, again = generate(7, minutes=30)
    _, other = generate(8, minutes=30)
    assert [(t, s.do, dict(s.fields)) for t, s in first] == [(t, s.do, dict(s.fields)) for t, s in again]
    assert [(t, s.do) for t, s in first] != [(t, s.do) for t, s in other]


def test_steps_are_in_time_order_and_all_valid() -> None:
    generator, steps = generate(11, cap=500)
    times = [t for t, _ in steps]
    assert times == sorted(times)
    events, _ = run(steps)
    # Poisson arrivals: 30/min for 4 h is 7,200, of which 5 % are state changes rather than calls
    assert generator.blocked == 0
    assert abs(generator.started - 7200 * 0.95) < 4 * (7200**0.5)
    chains = sum(isinstance(e, CallStarted) for e in events)
    assert 0.9 * generator.started < chains < generator.started  # internal calls are not chains


def test_the_mix_covers_every_kind_of_call() -> None:
    _, steps = generate(3, minutes=120)
    kinds = Counter(s.do for _, s in steps)
    for do in (
        "incoming",
        "outgoing",
        "internal",
        "route",
        "ring",
        "answer",
        "transfer",
        "consult",
        "complete",
        "hold",
        "resume",
        "reconnect",
        "callback",
        "hangup",
        "register",
        "unregister",
        "set_forwarding",
        "queue_login",
        "stop_ring" if kinds["stop_ring"] else "ring",
    ):
        assert kinds[do] > 0, do
    events, _ = run(steps)
    ended = [e for e in events if isinstance(e, CallEnded)]
    assert any(not e.answered for e in ended) and any(e.transferred for e in ended)
    assert any(e.callback_requested for e in ended)
    answered = Counter(e.transfer_type for e in events if isinstance(e, CallAnswered))
    assert set(answered) == {"NotDef", "Blind", "Accomp"}
    assert {e.user_type for e in events if isinstance(e, CallRinging)} == {"queue", "ext", "other"}


def test_concurrent_calls_stay_under_the_cap() -> None:
    generator, steps = generate(5, minutes=60, rate=120, cap=10)
    _, most = run(steps)
    assert generator.blocked > 0  # the cap was reached
    assert most <= 10 + 10  # consultation calls are extra calls of a chain that counts once


def test_every_chain_follows_the_classic_order_and_ends() -> None:
    _, steps = generate(21, minutes=180)
    events, _ = run(steps)
    chains: dict[str, list[CallEvent]] = defaultdict(list)
    for e in events:
        if isinstance(e, CallEvent):
            chains[e.chain_id].append(e)
    assert chains
    for chain_id, chain in chains.items():
        assert isinstance(chain[0], CallStarted), chain_id
        ends = [e for e in chain if isinstance(e, CallEnded)]
        assert ends and ends[-1].chain_ended and ends[-1] is chain[-1], chain_id
        assert sum(e.chain_ended for e in ends) == 1, chain_id
        link, answered = 0, False
        for e in chain[1:]:
            if isinstance(e, CallRinging):
                assert e.link == link and not answered, chain_id
            elif isinstance(e, CallAnswered):
                assert e.link >= link and e.link >= 1 and not answered, chain_id
                link, answered = e.link, True
            elif isinstance(e, CallEnded):
                assert e.link == link and e.answered == answered, chain_id
                if e.transferred:
                    link, answered = link + 1, False


def test_a_fresh_start_rings_a_phone_within_seconds() -> None:
    for seed in range(20):
        _, steps = generate(seed, minutes=1, rate=1)
        first_ring = next(t for t, step in steps if step.do == "ring")
        assert first_ring < 4.5, seed  # arrival within 1 s, ring within 3.5 s more


def test_conversations_last_as_long_as_asked() -> None:
    generator = TrafficGenerator(
        default_directory(), seed=5, calls_per_minute=30, max_concurrent=25, talk=(5.0, 8.0)
    )
    events, _ = run(list(generator.steps(until=3600)))
    talked = [e.duration for e in events if isinstance(e, CallEnded) and e.answered]
    assert talked and sorted(talked)[len(talked) // 2] <= 8.0  # by default 20 to 240 s
    assert max(talked) < 60  # a transferred call talks more than once


def test_traffic_for_a_set_number_of_minutes_stops_arriving_and_ends() -> None:
    def arrivals(minutes: float) -> list[float]:
        settings = Settings.model_validate(
            {"simulator": {"calls_per_minute": 30, "max_concurrent": 50, "minutes": minutes, "seed": 3}}
        )
        first: dict[str, datetime] = {}
        timeline = list(islice(traffic_timeline(settings, default_directory(), VirtualClock(START)), 10_000))
        assert len(timeline) < 10_000, "the traffic should end"
        for at, step in timeline:
            if re.fullmatch(r"G\d+", step.fields.get("call", "")):  # a new call, not a callback ("G9c")
                first.setdefault(step.fields["call"], at)
        return [(at - START).total_seconds() for at in first.values()]

    one, two = arrivals(1), arrivals(2)
    assert one and max(one) <= 60 < max(two) <= 120
