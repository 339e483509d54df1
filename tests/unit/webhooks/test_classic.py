"""Events → classic webhook parameters, exactly as the contract lists them."""

import json

import pytest

from services.webhooks.classic import classic_payload, classic_recording, duration_text
from services.webhooks.formats import build_request
from shared.events import CallAnswered, CallStarted, ExtensionPresence, RecordingReady
from tests.factories import AT, make_call_ended, make_call_ringing


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "00:00:00"), (25.49, "00:00:25"), (25.5, "00:00:26"), (3599.6, "01:00:00"), (90061, "25:01:01")],
)
def test_duration_is_rounded_to_the_second(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_ringing_fields() -> None:
    assert classic_payload(make_call_ringing()) == {
        "event": "ringing",
        "callerid": "420774852629",
        "did": "PragueDID",
        "user": "101",
        "usertype": "queue",
        "id": "211230100614_665-0",
    }


def test_call_start_fields_by_direction() -> None:
    common = {
        "occurred_at": AT,
        "source": "s",
        "seq": 1,
        "chain_id": "220106205945_755",
        "call_number": 755,
        "external_number": "420777123456",
        "link": 1,
        "extension": "101",
        "transfer_type": "NotDef",
    }
    assert classic_payload(CallAnswered(**common, direction="outbound")) == {
        "event": "hangupoutgoing",
        "callerid": "420777123456",
        "user": "101",
        "did": "",
        "trtype": "NotDef",
        "id": "220106205945_755-1",
    }
    assert (
        classic_payload(CallAnswered(**common, direction="inbound", did_name="X"))["event"]
        == "hangupincoming"
    )  # type: ignore[index]


def test_call_end_fields() -> None:
    payload = classic_payload(make_call_ended(transferred=True))
    assert payload is not None
    assert set(payload) == {"event", "callerid", "user", "finishtype", "transfer", "title", "id"}
    assert (payload["event"], payload["finishtype"], payload["transfer"], payload["id"]) == (
        "incoming",
        "Ok",
        "true",
        "211230100614_665-1",
    )
    assert "PragueDID" in payload["title"] and "00:00:25" in payload["title"]


@pytest.mark.parametrize(
    ("routed_type", "callback", "phrase"),
    [
        ("queue", False, "no callback"),
        ("queue", True, "callback requested"),
        ("group", False, None),
        ("ivr", False, None),
        ("extension", False, None),
    ],
)
def test_callback_phrase_only_for_missed_at_queue_level(
    routed_type: str, callback: bool, phrase: str | None
) -> None:
    payload = classic_payload(
        make_call_ended(
            answered=False,
            link=0,
            extension="800",
            routed_type=routed_type,
            callback_requested=callback,
            duration=20.2,
        )
    )
    assert payload is not None and payload["finishtype"] == "Missed"
    title = payload["title"]
    assert "00:00:20" in title and "PragueDID" in title
    for candidate in ("no callback", "callback requested"):
        assert (candidate in title) == (candidate == phrase), title


def test_answered_titles_never_mention_callbacks() -> None:
    payload = classic_payload(make_call_ended(routed_type="queue"))
    assert payload is not None and "callback" not in payload["title"]


def test_outgoing_titles_have_no_did() -> None:
    payload = classic_payload(make_call_ended(direction="outbound", did_name="", did_number="", duration=60))
    assert payload is not None and payload["event"] == "outgoing" and "00:01:00" in payload["title"]


def test_events_without_a_classic_webhook() -> None:
    assert (
        classic_payload(
            CallStarted(
                occurred_at=AT,
                source="s",
                seq=1,
                chain_id="x",
                call_number=1,
                direction="inbound",
                external_number="1",
                routed_to="800",
            )
        )
        is None
    )
    assert (
        classic_payload(ExtensionPresence(occurred_at=AT, source="s", seq=1, extension="1", busy=True))
        is None
    )


def recording_ready(**overrides: object) -> RecordingReady:
    ended = make_call_ended(link=1, extension="102", transferred=True)
    fields: dict[str, object] = {
        "occurred_at": AT,
        "source": "s",
        "seq": 1,
        "chain_id": ended.chain_id,
        "call_number": 665,
        "direction": "inbound",
        "external_number": ended.external_number,
        "did_name": "PragueDID",
        "link": 1,
        "files": (
            "https://pbx:5001/webapi/recording/211230100614_665-1-1.mp3?expires=1&token=ab",
            "https://pbx:5001/webapi/recording/211230100614_665-1-2.mp3?expires=1&token=cd",
        ),
        "ended": ended,
    }
    return RecordingReady(**(fields | overrides))  # type: ignore[arg-type]


def test_recording_post_body() -> None:
    event = recording_ready()
    assert classic_payload(event) is None  # not a GET
    assert classic_recording(event) == {"FILES": list(event.files), "id": "211230100614_665-1"}


def test_recording_post_with_call_info() -> None:
    body = classic_recording(recording_ready(), call_info=True)
    assert body["id"] == "211230100614_665-1"
    assert (body["event"], body["user"], body["finishtype"], body["transfer"]) == (
        "incoming",
        "102",
        "Ok",
        "true",
    )
    assert "PragueDID" in str(body["title"])


def test_classic_endpoints_get_recordings_as_post_json() -> None:
    request = build_request("http://crm/hook", "classic", (), recording_ready(), AT)
    assert request is not None
    assert (request.method, request.headers["content-type"]) == ("POST", "application/json")
    assert json.loads(request.body or b"")["FILES"][1].endswith("-1-2.mp3?expires=1&token=cd")
