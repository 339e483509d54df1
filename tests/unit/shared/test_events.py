"""The bus contract: every message type round-trips, is in the union, and its schema is pinned."""

import json
import os
import tracemalloc
import uuid
from datetime import datetime
from pathlib import Path
from typing import get_args

import pytest
from pydantic import ValidationError

from shared import events
from shared.call_state import CallLeg, CallParty, CallState
from shared.directory import Directory
from shared.event_base import Event, new_event_id
from shared.events import (
    MESSAGE_ADAPTER,
    CallAnswered,
    CallsChanged,
    CallStarted,
    DirectorySnapshot,
    EventBatch,
    ExtensionForwarding,
    ExtensionOptions,
    ExtensionPresence,
    ExtensionQueueLogin,
    ExtensionRegistration,
    RecordingConverted,
    RecordingFailed,
    RecordingReady,
    WebhookEndpointDisabled,
    each_event,
    encode_batch,
    encode_event,
    parse_event,
)
from tests.factories import AT, make_call_ended, make_call_ringing

SNAPSHOT = Path(__file__).with_name("event_schema.json")
COMMON = {"occurred_at": AT, "source": "test/1", "seq": 1}
CHAIN = {"chain_id": "211230100614_665", "call_number": 665, "direction": "inbound", "external_number": "1"}
CALL_STATE = {**COMMON, "call_number": 7, "direction": "Internal", "state": "Initiating", "started_at": AT}

SAMPLES: list[Event] = [
    CallStarted(**COMMON, **CHAIN, routed_to="800"),
    make_call_ringing(),
    CallAnswered(**COMMON, **CHAIN, link=1, extension="102", transfer_type="Blind"),
    make_call_ended(),
    RecordingReady(
        **COMMON,
        **CHAIN,
        link=1,
        files=("https://pbx/webapi/recording/211230100614_665-1-1.mp3",),
        ended=make_call_ended(),
    ),
    ExtensionRegistration(**COMMON, extension="101", registered=False),
    ExtensionPresence(**COMMON, extension="101", busy=True),
    ExtensionForwarding(**COMMON, extension="101", profile="Out of office"),
    ExtensionQueueLogin(**COMMON, extension="101", queue="all", logged_in=False),
    ExtensionOptions(**COMMON, extension="101", enabled=True, external=False, recording="external"),
    DirectorySnapshot(**COMMON, directory=Directory()),
    CallState(
        **COMMON,
        call_number=665,
        chain_id="211230100614_665",
        direction="Inbound",
        state="Talking",
        started_at=AT,
        answered_at=AT,
        did="+420221000000",
        owner=CallParty(number="420777000111", type="external"),
        talk_to=(CallParty(number="102", name="Jana", type="extension"),),
        legs=(
            CallLeg(dn="10000", dn_type="line", status="Connected", external_party="420777000111"),
            CallLeg(dn="102", dn_type="extension", status="Connected", external_party="420777000111"),
        ),
    ),
    CallsChanged(
        **COMMON,
        calls=(
            CallState(
                **COMMON, call_number=7, direction="Internal", state="Initiating", started_at=AT, owner=None
            ),
        ),
        in_progress=(7, 665),
    ),
    WebhookEndpointDisabled(**COMMON, endpoint="crm", reason="410 Gone"),
    EventBatch(
        **COMMON, events=(make_call_ringing(), ExtensionPresence(**COMMON, extension="101", busy=True))
    ),
    RecordingFailed(**COMMON, path="/pbx/101/x.wav", reason="not a readable PCM WAV"),
    RecordingConverted(
        **COMMON,
        chain_id="211230100614_665",
        link=1,
        wav="/pbx/101/x.wav",
        mp3="/a/2021-12-30/211230100614_665-1-1.mp3",
        ok=True,
        seconds=25.0,
    ),
]


def _concrete(cls: type[Event]) -> set[type[Event]]:
    found = set()
    for sub in cls.__subclasses__():
        found |= _concrete(sub)
        if "type" in sub.model_fields and get_args(sub.model_fields["type"].annotation):
            found.add(sub)
    return found


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_round_trip(event: Event) -> None:
    assert parse_event(encode_event(event)) == event


def test_every_event_class_is_in_the_union_and_sampled() -> None:
    union = set(get_args(get_args(events.Message)[0]))
    assert _concrete(Event) == union
    assert {type(e) for e in SAMPLES} == union


def test_a_batch_made_of_the_bodies_as_they_are_is_the_batch_of_their_events() -> None:
    """The monitor joins the bodies its outbox keeps, without decoding them again."""
    states = next(e for e in SAMPLES if isinstance(e, CallsChanged))
    members = [make_call_ringing(), make_call_ended(), states]
    batch = parse_event(encode_batch([encode_event(e) for e in members], members[-1]))
    assert isinstance(batch, EventBatch)
    assert list(batch.events) == members and each_event(batch) == tuple(members)
    assert (batch.source, batch.seq, batch.occurred_at) == (members[-1].source, members[-1].seq, AT)
    assert each_event(members[0]) == (members[0],)


def test_naive_timestamps_are_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        ExtensionPresence(occurred_at=datetime(2024, 1, 1), source="s", seq=1, extension="1", busy=True)


def test_sequence_numbers_start_at_one() -> None:
    with pytest.raises(ValidationError):
        ExtensionPresence(occurred_at=AT, source="s", seq=0, extension="1", busy=True)


def test_a_calls_legs_and_parties_are_small_and_still_checked() -> None:
    """The monitor and the api keep a leg and a party for each of ~10,000 calls in progress: ~64
    bytes each beside their strings (a pydantic model took ~450)."""
    numbers = [f"+42077{n:07d}" for n in range(1000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        legs = [CallLeg(dn="102", dn_type="extension", status="Ringing", external_party=n) for n in numbers]
        parties = [CallParty(number=n, type="external") for n in numbers]
        each = (tracemalloc.get_traced_memory()[0] - before) / (len(legs) + len(parties))
    finally:
        tracemalloc.stop()
    assert each < 150
    with pytest.raises(ValidationError, match=r"owner\.x"):
        CallState.model_validate({**CALL_STATE, "owner": {"number": "1", "type": "extension", "x": 1}})
    with pytest.raises(ValidationError, match="status"):
        CallState.model_validate({**CALL_STATE, "legs": [{"dn": "1", "dn_type": "line", "status": "Gone"}]})
    with pytest.raises(AttributeError):  # frozen: a kept view cannot change under its calls
        legs[0].status = "Connected"  # type: ignore[misc]


def test_unknown_type_does_not_parse() -> None:
    body = encode_event(make_call_ringing()).replace(b"call.ringing", b"call.exploded")
    with pytest.raises(ValidationError):
        parse_event(body)


def test_consumers_ignore_unknown_fields() -> None:
    document = json.loads(encode_event(make_call_ringing()))
    document["added_in_a_later_version"] = 1
    assert parse_event(json.dumps(document).encode()).type == "call.ringing"


def test_classic_call_id() -> None:
    assert make_call_ringing(link=0).call_id == "211230100614_665-0"
    assert CallStarted(**COMMON, **CHAIN, routed_to="800").call_id == "211230100614_665"


def test_schema_snapshot() -> None:
    """A contract change shows here as a diff. Regenerate with UPDATE_SNAPSHOTS=1 after review."""
    schema = json.dumps(MESSAGE_ADAPTER.json_schema(), indent=2, sort_keys=True) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(schema)
    assert SNAPSHOT.read_text() == schema, (
        "the bus contract changed: review, then run with UPDATE_SNAPSHOTS=1"
    )


def test_event_ids_are_random_version_4_uuids_and_never_repeat() -> None:
    ids = [new_event_id() for _ in range(5000)]  # more than one 4 KiB batch of random bytes
    assert len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {4} and {i.variant for i in ids} == {uuid.RFC_4122}
