"""The call tracker, rule by rule (docs/classic-webhooks.md)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from services.monitor.pacing import Pacing
from services.monitor.tracker import CallTracker
from services.monitor.updates import ParticipantUpdate
from shared.call_state import CallState
from shared.event_base import Event
from shared.events import CallEnded, CallsChanged, CallStarted, ExtensionPresence
from simulation.scenario import default_directory
from tests.fakes import brief, calls, play

IN_QUEUE = "- {t: 0, do: incoming, call: A, from: '111', did: PragueDID, to: '800'}\n"


def test_call_id_is_pbx_local_arrival_time_and_call_number() -> None:
    events = play(
        IN_QUEUE + "- {t: 0.7, do: ring, call: A, dn: ['101']}",
        start="2021-12-30T10:06:14",
        zone=ZoneInfo("Europe/Prague"),
        first=665,
    )
    started = events[0]
    assert isinstance(started, CallStarted)
    assert started.chain_id == "211230100614_665"
    assert started.occurred_at == datetime(2021, 12, 30, 9, 6, 14, tzinfo=UTC)  # aware, the same instant
    assert calls(events)[0].call_id == "211230100614_665-0"


def test_every_call_takes_a_number_internal_ones_too() -> None:
    events = play(
        """
- {t: 0, do: internal, call: I, from: '101', to: '102'}
- {t: 1, do: outgoing, call: B, from: '103', to: '5550001'}
""",
        first=40,
    )
    assert [e.chain_id for e in events if isinstance(e, CallStarted)] == ["240301090001_41"]


def test_user_types() -> None:
    events = play("""
- {t: 0, do: incoming, call: Q, from: '1', did: PragueDID, to: '800'}
- {t: 0, do: ring, call: Q, dn: ['101']}
- {t: 0, do: incoming, call: E, from: '2', did: PragueDID, to: '103'}
- {t: 0, do: ring, call: E, dn: ['103']}
- {t: 0, do: ring, call: E, dn: ['104']}
- {t: 0, do: incoming, call: G, from: '3', did: PragueDID, to: '700'}
- {t: 0, do: ring, call: G, dn: ['103']}
- {t: 0, do: incoming, call: V, from: '4', did: PragueDID, to: '600'}
- {t: 0, do: ring, call: V, dn: ['106']}
""")
    assert [(e.external_number, e.extension, e.user_type) for e in calls(events)] == [
        ("1", "101", "queue"),
        ("2", "103", "ext"),
        ("2", "104", "other"),
        ("3", "103", "other"),
        ("4", "106", "other"),
    ]


def test_queue_after_a_transfer_still_rings_as_queue() -> None:
    events = play(
        IN_QUEUE
        + """
- {t: 1, do: ring, call: A, dn: ['101']}
- {t: 2, do: answer, call: A, dn: '101'}
- {t: 5, do: transfer, call: A, by: '101', to: '801'}
- {t: 6, do: ring, call: A, dn: ['103', '104']}
- {t: 9, do: answer, call: A, dn: '104'}
- {t: 20, do: hangup, call: A, by: '104'}
"""
    )
    assert brief(events) == [
        ("ringing", "240301090000_1-0", "101", "queue"),
        ("answered", "240301090000_1-1", "101", "NotDef"),
        ("ended", "240301090000_1-1", "101", "Ok", True, 3.0),
        ("ringing", "240301090000_1-2", "103", "queue"),
        ("ringing", "240301090000_1-2", "104", "queue"),
        ("answered", "240301090000_1-2", "104", "Blind"),
        ("ended", "240301090000_1-2", "104", "Ok", False, 11.0),
    ]


def test_links_count_transfers_of_both_kinds() -> None:
    events = play(
        IN_QUEUE
        + """
- {t: 1, do: ring, call: A, dn: ['101']}
- {t: 2, do: answer, call: A, dn: '101'}
- {t: 10, do: consult, call: A, by: '101', to: '102', consult: C}
- {t: 11, do: ring, call: C, dn: ['102']}
- {t: 12, do: answer, call: C, dn: '102'}
- {t: 20, do: complete, call: A, consult: C}
- {t: 30, do: transfer, call: A, by: '102', to: '103'}
- {t: 31, do: ring, call: A, dn: ['103']}
- {t: 33, do: answer, call: A, dn: '103'}
- {t: 40, do: hangup, call: A, by: external}
"""
    )
    assert brief(events) == [
        ("ringing", "240301090000_1-0", "101", "queue"),
        ("answered", "240301090000_1-1", "101", "NotDef"),
        ("ended", "240301090000_1-1", "101", "Ok", True, 18.0),  # until the attended transfer completed
        ("answered", "240301090000_1-2", "102", "Accomp"),
        ("ended", "240301090000_1-2", "102", "Ok", True, 10.0),
        ("ringing", "240301090000_1-3", "103", "ext"),
        ("answered", "240301090000_1-3", "103", "Blind"),
        ("ended", "240301090000_1-3", "103", "Ok", False, 7.0),
    ]


def test_hold_counts_as_talk_time() -> None:
    events = play(
        IN_QUEUE
        + """
- {t: 1, do: ring, call: A, dn: ['101']}
- {t: 2, do: answer, call: A, dn: '101'}
- {t: 3, do: hold, call: A, by: '101'}
- {t: 50, do: resume, call: A, by: '101'}
- {t: 62, do: hangup, call: A, by: external}
"""
    )
    assert brief(events)[-1] == ("ended", "240301090000_1-1", "101", "Ok", False, 60.0)


def test_missed_at_queue_level_from_arrival_with_callback_flag() -> None:
    hung_up = play(
        IN_QUEUE + "- {t: 1, do: ring, call: A, dn: ['101']}\n- {t: 20.4, do: hangup, call: A, by: external}"
    )
    called_back = play(
        IN_QUEUE + "- {t: 1, do: ring, call: A, dn: ['101']}\n- {t: 20.6, do: callback, call: A}"
    )
    for events, callback in ((hung_up, False), (called_back, True)):
        ended = calls(events)[-1]
        assert isinstance(ended, CallEnded)
        assert (ended.extension, ended.answered, ended.routed_type, ended.callback_requested) == (
            "800",
            False,
            "queue",
            callback,
        )
        assert ended.call_id == "240301090000_1-0"
    assert round(calls(hung_up)[-1].duration, 1) == 20.4  # type: ignore[attr-defined]


def test_missed_reports_the_dn_routed_to_when_it_ended() -> None:
    events = play("""
- {t: 0, do: incoming, call: A, from: '9', did: BrnoDID, to: '600'}
- {t: 8, do: route, call: A, to: '700'}
- {t: 9, do: ring, call: A, dn: ['103', '104']}
- {t: 15, do: hangup, call: A, by: external}
""")
    ended = calls(events)[-1]
    assert isinstance(ended, CallEnded)
    assert (ended.extension, ended.routed_type, ended.did_name, ended.duration) == (
        "700",
        "group",
        "BrnoDID",
        15.0,
    )


def test_missed_link_after_blind_transfer_lasts_from_the_transfer() -> None:
    events = play(
        IN_QUEUE
        + """
- {t: 1, do: ring, call: A, dn: ['101']}
- {t: 2, do: answer, call: A, dn: '101'}
- {t: 10, do: transfer, call: A, by: '101', to: '103'}
- {t: 10.5, do: ring, call: A, dn: ['103']}
- {t: 40, do: hangup, call: A, by: external}
"""
    )
    assert brief(events)[-1] == ("ended", "240301090000_1-2", "103", "Missed", False, 30.0)


def test_ringing_again_sends_another_ringing_and_stop_sends_nothing() -> None:
    events = play(
        IN_QUEUE
        + """
- {t: 1, do: ring, call: A, dn: ['101', '102']}
- {t: 5, do: stop_ring, call: A, dn: '101'}
- {t: 9, do: ring, call: A, dn: ['101']}
"""
    )
    assert [e.extension for e in calls(events)] == ["101", "102", "101"]  # type: ignore[attr-defined]


def test_outgoing_chains_ring_nobody_and_miss_at_the_dialler() -> None:
    answered = play("""
- {t: 0, do: outgoing, call: B, from: '101', to: '5550001'}
- {t: 4, do: answer, call: B, dn: external}
- {t: 10, do: hangup, call: B, by: external}
""")
    assert brief(answered) == [
        ("answered", "240301090000_1-1", "101", "NotDef"),
        ("ended", "240301090000_1-1", "101", "Ok", False, 6.0),
    ]
    assert all(e.direction == "outbound" and e.did_name == "" for e in calls(answered))
    missed = play("""
- {t: 0, do: outgoing, call: B, from: '102', to: '5550001'}
- {t: 25, do: hangup, call: B, by: '102'}
""")
    assert brief(missed) == [("ended", "240301090000_1-0", "102", "Missed", False, 25.0)]


def test_a_transferred_outgoing_chain_rings_its_new_extension() -> None:
    events = play("""
- {t: 0, do: outgoing, call: B, from: '101', to: '5550001'}
- {t: 4, do: answer, call: B, dn: external}
- {t: 10, do: transfer, call: B, by: '101', to: '102'}
- {t: 11, do: ring, call: B, dn: ['102']}
- {t: 12, do: answer, call: B, dn: '102'}
- {t: 20, do: hangup, call: B, by: '102'}
""")
    assert [b[:3] for b in brief(events)] == [
        ("answered", "240301090000_1-1", "101"),
        ("ended", "240301090000_1-1", "101"),
        ("ringing", "240301090000_1-2", "102"),
        ("answered", "240301090000_1-2", "102"),
        ("ended", "240301090000_1-2", "102"),
    ]
    assert all(e.direction == "outbound" for e in calls(events))


def test_internal_calls_send_no_call_events_but_change_presence() -> None:
    events = play("""
- {t: 0, do: internal, call: I, from: '101', to: '102'}
- {t: 1, do: ring, call: I, dn: ['102']}
- {t: 3, do: answer, call: I, dn: '102'}
- {t: 9, do: hangup, call: I, by: '102'}
""")
    assert calls(events) == []
    presence = [(e.extension, e.busy) for e in events if isinstance(e, ExtensionPresence)]
    assert presence == [("101", True), ("102", True), ("102", False), ("101", False)]  # who hung up first


def test_presence_changes_once_per_transition() -> None:
    events = play("""
- {t: 0, do: outgoing, call: B, from: '101', to: '5550001'}
- {t: 2, do: answer, call: B, dn: external}
- {t: 3, do: internal, call: I, from: '101', to: '102'}
- {t: 5, do: hangup, call: I, by: '101'}
- {t: 9, do: hangup, call: B, by: external}
""")
    presence = [(e.extension, e.busy) for e in events if isinstance(e, ExtensionPresence)]
    assert presence == [("101", True), ("101", False)]


def test_sequence_numbers_are_contiguous() -> None:
    events = play(
        IN_QUEUE + "- {t: 1, do: ring, call: A, dn: ['101']}\n- {t: 2, do: answer, call: A, dn: '101'}"
    )
    seqs = [e.seq for e in events]  # what a `pbx.calls` carries has its number
    assert seqs == sorted(seqs) and set(seqs) == set(range(1, seqs[-1] + 1))
    assert {e.source for e in events} == {"test"}


def _leg(**fields: object) -> ParticipantUpdate:
    base: dict[str, object] = dict(
        at=datetime(2024, 1, 1, tzinfo=UTC),
        dn="10000",
        dn_type="Wexternalline",
        id=1,
        callid=7,
        legid=1,
        status="Ringing",
        party_caller_id="555",
        party_dn="101",
        party_dn_type="Wextension",
        party_did="+420221000000",
        originated_by_dn="10000",
        originated_by_type="Wexternalline",
    )
    return ParticipantUpdate(**(base | fields))  # type: ignore[arg-type]


def test_repeated_upserts_and_unknown_removes_change_nothing() -> None:
    tracker = CallTracker(default_directory(), zone=ZoneInfo("UTC"), source="t")
    leg = _leg()
    assert [e.type for e in tracker.apply(leg)] == ["call.started", "pbx.calls"]
    assert tracker.apply(replace(leg, at=leg.at + timedelta(seconds=1))) == []  # 3CX sends Upserts twice
    ring = _leg(
        dn="101", dn_type="Wextension", id=2, legid=2, party_dn="10000", party_dn_type="Wexternalline"
    )
    assert [e.type for e in tracker.apply(ring)] == ["call.ringing", "pbx.calls"]
    assert tracker.apply(ring) == []
    assert tracker.apply(replace(ring, id=99, removed=True)) == []
    assert tracker.apply(replace(ring, callid=1234, removed=True)) == []
    assert tracker.seq == 4


def test_did_rule_name_comes_from_the_directory() -> None:
    tracker = CallTracker(default_directory(), zone=ZoneInfo("UTC"), source="t")
    started = tracker.apply(_leg(party_did="+420541000000"))[0]
    assert isinstance(started, CallStarted) and started.did_name == "BrnoDID"
    unknown = tracker.apply(_leg(callid=8, id=5, party_did="+1999"))[0]
    assert isinstance(unknown, CallStarted) and unknown.did_name == "+1999"  # shown rather than lost


def _states(events: list[Event], number: int) -> list[tuple[str, str]]:
    return [(e.direction, e.state) for e in events if isinstance(e, CallState) and e.call_number == number]


def test_call_states_of_an_inbound_call_rerouted_answered_and_blind_transferred() -> None:
    events = play(
        IN_QUEUE
        + """
- {t: 1, do: route, call: A, to: "700"}
- {t: 2, do: ring, call: A, dn: ["103"]}
- {t: 3, do: answer, call: A, dn: "103"}
- {t: 9, do: transfer, call: A, by: "103", to: "104"}
- {t: 10, do: ring, call: A, dn: ["104"]}
- {t: 12, do: answer, call: A, dn: "104"}
- {t: 20, do: hangup, call: A, by: external}
"""
    )
    states = _states(events, 1)
    assert states[0] == ("FromExternal", "Routing")  # waiting in queue 800
    assert ("FromExternal", "Rerouting") in states  # moved on to ring group 700 before anyone answered
    assert ("Inbound", "Rerouting") in states  # 103 rings for the ring group
    assert ("Inbound", "Talking") in states
    after_transfer = states[states.index(("Inbound", "Talking")) + 1 :]
    assert ("FromExternal", "Transferring") in after_transfer  # 103 left, 104 not ringing yet
    assert ("Inbound", "Transferring") in after_transfer  # 104 rings
    final = [e for e in events if isinstance(e, CallState)][-1]
    assert final.ended and final.answered_at == datetime(2024, 3, 1, 9, 0, 3, tzinfo=UTC)


def test_every_participant_change_publishes_the_call_once_and_its_end() -> None:
    events = play(
        "- {t: 0, do: internal, call: I, from: '101', to: '102'}\n- {t: 1, do: hangup, call: I, by: '101'}"
    )
    states = [e for e in events if isinstance(e, CallState)]
    assert [(s.direction, s.state, s.ended) for s in states] == [
        ("FromInternal", "Initiating", False),
        ("FromInternal", "Unknown", True),
    ]
    assert states[0].owner is not None and states[0].owner.number == "101" and states[0].chain_id == ""


IDS = {"seq", "event_id"}
RING_THREE = (
    IN_QUEUE
    + """
- {t: 1, do: ring, call: A, dn: ['101', '102', '105']}
- {t: 4, do: answer, call: A, dn: '102'}
- {t: 9, do: hangup, call: A, by: external}
"""
)


def test_a_burst_publishes_each_call_it_changed_once_as_it_stands_after_it() -> None:
    one_by_one, burst = play(RING_THREE), play(RING_THREE, bursts=True)
    ringing = [e for e in burst if isinstance(e, CallState) and e.state == "Routing" and len(e.legs) > 2]
    assert len(ringing) == 1 and {leg.dn for leg in ringing[0].legs} >= {"101", "102", "105"}  # all three
    assert sum(isinstance(e, CallState) for e in burst) < sum(isinstance(e, CallState) for e in one_by_one)
    final = [e for e in burst if isinstance(e, CallState)][-1]
    last = [e for e in one_by_one if isinstance(e, CallState)][-1]
    assert final.ended and final.model_dump(exclude=IDS) == last.model_dump(exclude=IDS)
    seqs = [e.seq for e in burst]
    assert seqs == sorted(seqs) and set(seqs) == set(range(1, seqs[-1] + 1))


def test_bursts_change_no_call_event() -> None:
    def chain_events(events: list[Event]) -> list[tuple[object, ...]]:
        return [(e.type, e.model_dump_json(exclude=IDS)) for e in calls(events)]

    assert chain_events(play(RING_THREE, bursts=True)) == chain_events(play(RING_THREE))


def test_states_wait_to_be_published_then_go_in_one_message_each_call_once() -> None:
    """The states of many bursts gather until the monitor publishes them: one `pbx.calls`
    message, each call once and as it stands then, numbered with the message."""
    tracker = CallTracker(default_directory(), zone=ZoneInfo("UTC"), source="t")
    outside = _leg()
    ringing = _leg(
        dn="101", dn_type="Wextension", id=2, legid=2, party_dn="10000", party_dn_type="Wexternalline"
    )
    internal = _leg(
        callid=8, id=5, dn="102", dn_type="Wextension", party_dn="103", party_dn_type="Wextension"
    )
    classic: list[Event] = []
    for update in (outside, ringing, internal, replace(ringing, status="Connected")):
        classic += tracker.apply_burst([update])
        assert tracker.states_waiting
    assert not any(isinstance(e, CallState | CallsChanged) for e in classic)
    [message] = tracker.publish_states()
    assert isinstance(message, CallsChanged) and message.seq == tracker.seq and message.in_progress is None
    assert [(c.call_number, c.state) for c in message.calls] == [
        (8, "Initiating"),
        (outside.callid, "Talking"),
    ]
    assert {c.seq for c in message.calls} == {message.seq}
    assert not tracker.states_waiting and tracker.publish_states() == []


def test_pacing_says_when_the_states_are_due() -> None:
    at_once, later = Pacing(0), Pacing(60)
    assert not at_once.due(False) and at_once.patience() is None
    assert at_once.due(True)
    assert not later.due(True)  # the first change: due in a minute
    patience = later.patience()
    assert patience is not None and 59 < patience <= 60
    assert not later.due(False) and later.patience() is None  # nothing waits any more


def test_presence_goes_with_the_states_and_a_turn_back_cancels_one_not_published() -> None:
    tracker = CallTracker(default_directory(), zone=ZoneInfo("UTC"), source="t")
    dialling = _leg(callid=8, id=5, dn="102", dn_type="Wextension", status="Dialing", party_dn="103")
    tracker.apply_burst([dialling])
    assert not tracker.apply_burst([replace(dialling, status="Connected")])  # no event of its own
    [message] = tracker.publish_states()
    assert isinstance(message, CallsChanged)
    assert [(p.extension, p.busy, p.seq) for p in message.presence] == [("102", True, message.seq)]
    tracker.apply_burst([replace(dialling, removed=True)])  # 102 free again
    tracker.apply_burst([replace(dialling, callid=9, id=6)])  # and busy on another call at once
    [message] = tracker.publish_states()
    assert isinstance(message, CallsChanged) and message.presence == ()  # the API knew it busy
    assert [(c.call_number, c.ended) for c in message.calls] == [(8, True), (9, False)]
