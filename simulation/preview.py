"""`callbridge webhooks preview`: a scenario played through the webhooks service as it is, to an
endpoint that is not called. Each request is printed instead of sent, and answered 200 with a
body that carries, at each path a template remembers (`Callbridge-Remember`), a stand-in value
(`{NAME}`), so that the later requests show where the CRM's ids go."""

import json
from collections.abc import Iterable
from typing import Any, TextIO
from urllib.parse import urlencode

from services.webhooks.outgoing import WebhookRequest

from services.webhooks.sender import Answer


class PreviewTransport:
    def __init__(self, out: TextIO, secrets: Iterable[str] = ()) -> None:
        self._out = out
        self._secrets = [s for s in secrets if s]  # shown as *** (the endpoint's token)
        self._count = 0

    async def __call__(self, request: WebhookRequest, answer_within: float) -> Answer:
        self._count += 1
        self._out.write(f"# {self._count}\n{self._masked(shown(request))}\n\n")
        self._out.flush()
        return Answer(200, None, json.dumps(stand_in(request.remember)))

    def _masked(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text


def shown(request: WebhookRequest) -> str:
    url = f"{request.url}?{urlencode(request.params)}" if request.params else request.url
    lines = [f"{request.method} {url}", *(f"{k}: {v}" for k, v in request.headers.items())]
    if request.attach:
        lines.append(
            f"(sent as multipart/form-data, with {request.attach[0]} = the file at {request.attach[1]})"
        )
    body = (request.body or b"").decode(errors="replace")
    return "\n".join(lines) + (f"\n\n{body}" if body else "")


def stand_in(rules: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """`{"result": {"CALL_ID": "{call}"}}` for the rule `call = result.CALL_ID`."""
    document: dict[str, Any] = {}
    for name, path in rules:
        *parents, last = path.split(".")
        place = document
        for step in parents:
            place = place.setdefault(step, {})
        place[last] = f"{{{name}}}"
    return document
