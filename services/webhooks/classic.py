"""Events → the classic webhook wire format (docs/classic-webhooks.md). Pure.

`classic_payload(event)` gives the query parameters of a call event's GET as a flat mapping of
strings, or None for events that send no classic call-event webhook (chain start, PBX state,
recordings). `classic_recording(event)` gives a recording POST's JSON body.
"""

from collections.abc import Mapping

from shared.event_base import Event
from shared.events import CallAnswered, CallEnded, CallRinging, RecordingReady


def duration_text(seconds: float) -> str:
    """`hh:mm:ss`, rounded to the nearest second."""
    whole = int(seconds + 0.5)
    return f"{whole // 3600:02d}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def classic_recording(event: RecordingReady, call_info: bool = False) -> dict[str, object]:
    """A recording POST's JSON body; with `call_info`, the link's call-end fields too."""
    body: dict[str, object] = {"FILES": list(event.files), "id": event.call_id}
    if call_info:
        ended = classic_payload(event.ended) or {}
        body.update({k: v for k, v in ended.items() if k != "id"})
    return body


def classic_webhook(event: Event) -> Mapping[str, object] | None:
    """What the classic format carries for `event`: a recording POST's body, a call event's
    query, or None."""
    return classic_recording(event) if isinstance(event, RecordingReady) else classic_payload(event)


def classic_payload(event: Event) -> dict[str, str] | None:
    if isinstance(event, CallRinging):
        return {
            "event": "ringing",
            "callerid": event.external_number,
            "did": event.did_name,
            "user": event.extension,
            "usertype": event.user_type,
            "id": event.call_id,
        }
    if isinstance(event, CallAnswered):
        return {
            "event": "hangupincoming" if event.direction == "inbound" else "hangupoutgoing",
            "callerid": event.external_number,
            "user": event.extension,
            "did": event.did_name,
            "trtype": event.transfer_type,
            "id": event.call_id,
        }
    if isinstance(event, CallEnded):
        return {
            "event": "incoming" if event.direction == "inbound" else "outgoing",
            "callerid": event.external_number,
            "user": event.extension,
            "finishtype": "Ok" if event.answered else "Missed",
            "transfer": "true" if event.transferred else "false",
            "title": title(event),
            "id": event.call_id,
        }
    return None


def title(event: CallEnded) -> str:
    """A readable phrase about the link: DID rule (inbound), queue-level callback phrase, duration."""
    if event.direction == "inbound":
        did = f" on {event.did_name}" if event.did_name else ""
        parts = [f"Incoming call from {event.external_number}{did}"]
    else:
        parts = [f"Outgoing call to {event.external_number}"]
    if event.answered:
        parts.append(
            f"answered by {event.extension}" if event.direction == "inbound" else f"by {event.extension}"
        )
        if event.transferred:
            parts.append("transferred")
        parts.append(f"talk time {duration_text(event.duration)}")
        return ", ".join(parts)
    where = {"queue": "queue ", "group": "ring group ", "ivr": "IVR "}.get(event.routed_type, "")
    if event.direction == "inbound":
        parts.append(f"missed at {where}{event.extension}")
    else:
        parts.append(f"from {event.extension} not answered")
    if event.routed_type == "queue":
        parts.append("callback requested" if event.callback_requested else "no callback")
    parts.append(f"after {duration_text(event.duration)}")
    return ", ".join(parts)
