"""The fold of events into the PBX's state, and its snapshot, which the API starts from."""

from datetime import UTC, datetime

from shared.call_state import CallLeg, CallParty, CallState
from shared.directory import Directory, Extension, Queue
from shared.events import (
    CallsChanged,
    DirectorySnapshot,
    ExtensionForwarding,
    ExtensionPresence,
    ExtensionQueueLogin,
    ExtensionRegistration,
)
from shared.pbx_state import PbxState

AT = datetime(2026, 11, 30, 9, tzinfo=UTC)
STAMP = {"occurred_at": AT, "source": "m/1"}
DIRECTORY = Directory(
    extensions=(Extension(number="101", name="Ann"), Extension(number="102", name="Bo")),
    queues=(Queue(number="800", name="Sales", agents=("101", "102")),),
)


def call(number: int, *, ended: bool = False, seq: int = 10) -> CallState:
    return CallState(
        **STAMP,
        seq=seq,
        call_number=number,
        direction="Internal",
        state="Talking",
        started_at=AT,
        owner=CallParty(number="101", type="extension"),
        legs=(CallLeg(dn="101", dn_type="extension", status="Connected", external_party=""),),
        ended=ended,
    )


def folded() -> PbxState:
    state = PbxState()
    for event in (
        DirectorySnapshot(**STAMP, seq=1, directory=DIRECTORY),
        ExtensionRegistration(**STAMP, seq=2, extension="102", registered=False),
        ExtensionForwarding(**STAMP, seq=3, extension="101", profile="Away"),
        ExtensionQueueLogin(**STAMP, seq=4, extension="101", queue="800", logged_in=False),
        ExtensionPresence(**STAMP, seq=5, extension="101", busy=True),
        call(7),
        call(8),
        call(7, ended=True),
    ):
        state.apply(event)
    return state


def test_events_fold_into_the_extensions_and_the_calls() -> None:
    state = folded()
    ann, bo = state.extensions["101"], state.extensions["102"]
    assert (ann.profile, ann.logged_out_queues, bo.registered) == ("Away", ("800",), False)
    assert "101" in state.busy
    assert sorted(state.calls) == [8]  # an ended call leaves


def test_a_snapshot_gives_the_same_state_and_says_how_far_it_goes() -> None:
    state = folded()
    snapshot = state.snapshot("m/1", 8)
    again = PbxState.from_snapshot(type(snapshot).model_validate_json(snapshot.model_dump_json()))
    assert (snapshot.source, snapshot.seq) == ("m/1", 8)
    assert again.snapshot("m/1", 8) == snapshot


def test_calls_changed_folds_each_change_and_a_whole_one_replaces() -> None:
    state = folded()  # call 8 in progress, 101 busy
    state.apply(
        CallsChanged(
            **STAMP,
            seq=11,
            calls=(call(9, seq=11), call(8, seq=11, ended=True)),
            presence=(ExtensionPresence(**STAMP, seq=11, extension="102", busy=True),),
        )
    )
    assert (sorted(state.calls), sorted(state.busy)) == ([9], ["101", "102"])
    state.apply(CallsChanged(**STAMP, seq=12, calls=(call(10, seq=12),), in_progress=(10,), busy=("102",)))
    assert (sorted(state.calls), sorted(state.busy)) == ([10], ["102"])  # 9 ended and 101 freed unseen
