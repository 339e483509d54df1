"""`callbridge webhooks preview`: a scenario played through the webhooks service as it is, to an
endpoint that is not called. Each request is printed instead of sent (the endpoint's URL as
`{url}`: it may hold a token, as Zammad's and Slack's do; its token as ***), and answered 200
with a body that carries, at each path a template remembers (`Callbridge-Remember`), a stand-in
(`{NAME}`), so that the later requests show where the CRM's ids go."""

import json
from typing import Any, TextIO

from services.webhooks.outgoing import WebhookRequest, as_text
from services.webhooks.sender import Answer


class PreviewTransport:
    def __init__(self, out: TextIO, shown: dict[str, str]) -> None:
        self._out = out
        self._shown = shown  # what to show instead: the endpoint's URL as `{url}`, its token as ***
        self._count = 0

    async def __call__(self, request: WebhookRequest, answer_within: float) -> Answer:
        self._count += 1
        text = as_text(request, request.url)
        for secret, instead in self._shown.items():
            text = text.replace(secret, instead)
        self._out.write(f"# {self._count}\n{text}\n\n")
        self._out.flush()
        return Answer(200, None, json.dumps(stand_in(request.remember)))


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
