"""A template's rendering read back as an HTTP request.

`METHOD URL` on its first line, header lines `Name: value`, a blank line and the body, sent as it
is; a blank rendering sends nothing. Two headers are callbridge's, never sent:

- `Callbridge-Remember: NAME = PATH`: on a 2xx answer, the value at PATH of the JSON answer
  (`result.CALL_ID`, `data.id`, `id`) becomes the chain's `remote.NAME` for later requests.
- `Callbridge-Attach: FIELD = URL`: the request goes as multipart/form-data with the file at URL
  (a recording's link) as FIELD, and the body's JSON object's keys as fields beside it.
"""

import json
from typing import Any

from .outgoing import USER_AGENT, WebhookRequest

REMEMBER, ATTACH = "callbridge-remember", "callbridge-attach"  # their headers, lower case
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def parse(text: str, where: str) -> WebhookRequest | None:
    """A rendering as a request; None when blank. ValueError names what is wrong."""
    head, _, body = text.strip().replace("\r\n", "\n").partition("\n\n")
    if not head:
        return None
    first, *lines = head.split("\n")
    method, _, url = first.strip().partition(" ")
    if method.upper() not in METHODS or not url.startswith(("http://", "https://")):
        # never the line itself in the message: a URL may hold a token (it goes to the dead letters)
        raise ValueError(f"{where}: the first line must be METHOD URL ({', '.join(METHODS)}; http(s))")
    headers, remember, attach = {"user-agent": USER_AGENT}, [], None
    for number, line in enumerate(lines, 2):
        key, colon, value = line.partition(":")
        if not colon:
            raise ValueError(f"{where}: line {number} of the rendering is not a header (Name: value)")
        key, value = key.strip().lower(), value.strip()
        if key in (REMEMBER, ATTACH):
            pair = tuple(part.strip() for part in value.split("=", 1))
            if len(pair) != 2 or not all(pair):
                raise ValueError(f"{where}: line {number} of the rendering: {key} is NAME = VALUE")
            if key == REMEMBER:
                remember.append(pair)
            else:
                attach = pair
        else:
            headers[key] = value
    payload = body.strip().encode() or None
    return WebhookRequest(
        method.upper(), url.strip(), body=payload, headers=headers, remember=tuple(remember), attach=attach
    )


def remembered(rules: tuple[tuple[str, str], ...], answer: str) -> dict[str, str]:
    """The remote ids a 2xx answer gave, by the request's rules (those it lacks are left out)."""
    try:
        document = json.loads(answer)
    except ValueError:
        return {}
    found = {}
    for name, path in rules:
        value: Any = document
        for step in path.split("."):
            if isinstance(value, list) and step.isdigit() and int(step) < len(value):
                value = value[int(step)]
            else:  # a step the answer lacks: not found (this runs after a 2xx: it must not raise)
                value = value.get(step) if isinstance(value, dict) else None
        if value is not None and not isinstance(value, dict | list):
            found[name] = str(value)
    return found
