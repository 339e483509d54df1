"""What goes on the wire for one (endpoint, event): the classic format or signed Standard Webhooks.

Pure: `build_request` makes a `WebhookRequest`; the sender only sends it.

- classic: GET with the event's classic parameters as the query (`classic.classic_payload`);
  a recording as POST JSON (`classic.classic_recording`); events without a classic form are not
  sent to classic endpoints.
- json: POST `{"type", "timestamp", "data"}` with `webhook-id` (the event id: the same on every
  retry, the receiver's idempotency key), `webhook-timestamp` (this attempt) and
  `webhook-signature` (`v1,…` per secret, signed by the `standardwebhooks` library).
"""

import json
from datetime import datetime

from pydantic import SecretStr
from standardwebhooks.webhooks import Webhook

from shared.event_base import Event
from shared.events import RecordingReady

from .classic import classic_payload, classic_recording
from .outgoing import USER_AGENT, WebhookRequest


def json_body(event: Event) -> bytes:
    data = event.model_dump(mode="json", exclude={"type"})
    document = {"type": event.type, "timestamp": data["occurred_at"], "data": data}
    return json.dumps(document, separators=(",", ":")).encode()


def sign(secrets: tuple[SecretStr, ...], message_id: str, at: datetime, body: bytes) -> str:
    """One `v1,…` signature per secret, space-separated, so a rotation overlaps without a gap."""
    text = body.decode()
    return " ".join(Webhook(secret.get_secret_value()).sign(message_id, at, text) for secret in secrets)


def build_request(
    url: str, fmt: str, secrets: tuple[SecretStr, ...], event: Event, at: datetime, *, call_info: bool = False
) -> WebhookRequest | None:
    posted = {"content-type": "application/json", "user-agent": USER_AGENT}
    if fmt == "classic" and isinstance(event, RecordingReady):
        body = json.dumps(classic_recording(event, call_info)).encode()
        return WebhookRequest("POST", url, body=body, headers=posted)
    if fmt == "classic":
        payload = classic_payload(event)
        if payload is None:
            return None
        return WebhookRequest("GET", url, params=payload, headers={"user-agent": USER_AGENT})
    body = json_body(event)
    message_id = str(event.event_id)
    headers = {
        **posted,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": sign(secrets, message_id, at, body),
    }
    return WebhookRequest("POST", url, body=body, headers=headers)
