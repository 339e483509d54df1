"""Templated endpoints: what a template sees (`context`), and what the chain teaches it (`facts`
of its events, kept in the delivery store with the ids the CRM answered). The rendering read
back as a request: `request_text.py`."""

import json
from datetime import datetime
from typing import Any

from shared.event_base import Event
from shared.events import CallEvent
from shared.settings import EndpointSettings

from .classic import classic_webhook

FACT = "event:"  # memory names of the chain's delivered events; the others are remote ids


def context(
    name: str, endpoint: EndpointSettings, event: Event, at: datetime, memory: dict[str, str]
) -> dict[str, Any]:
    data = event.model_dump(mode="json")
    link = getattr(event, "link", None)
    if isinstance(event, CallEvent):
        data["call_id"] = event.call_id
    classic = classic_webhook(event)
    known = {k.removeprefix(FACT): json.loads(v) for k, v in memory.items() if k.startswith(FACT)}
    return {
        "event": data,
        "classic": classic or {},
        "chain": {k: v for k, v in known.items() if ":" not in k},  # each type's first in the chain
        "earlier": {k.split(":")[0]: v for k, v in known.items() if k.endswith(f":{link}")},  # this link's
        "remote": {k: v for k, v in memory.items() if not k.startswith(FACT)},
        "endpoint": {"name": name, "url": endpoint.url.rstrip("/"), "token": _token(endpoint)},
        "now": at.isoformat(),
    }


def facts(event: Event, memory: dict[str, str]) -> dict[str, str]:
    """What to remember of an event the endpoint has a template for: the chain's first of its
    type (`chain`) unless known already, and its link's latest (`earlier`)."""
    text = json.dumps(event.model_dump(mode="json"))
    link = getattr(event, "link", None)
    first = {} if f"{FACT}{event.type}" in memory else {f"{FACT}{event.type}": text}
    return first | ({f"{FACT}{event.type}:{link}": text} if link is not None else {})


def _token(endpoint: EndpointSettings) -> str:
    return endpoint.token.get_secret_value() if endpoint.token else ""
