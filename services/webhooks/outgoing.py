"""An HTTP request as the webhooks service sends it (whatever the endpoint's format made it), and
as the attempt log keeps it: without its secrets."""

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from shared.logging import endpoint_address, redact

USER_AGENT = "callbridge-webhooks/0.1"


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    method: str
    url: str
    params: dict[str, str] | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    remember: tuple[tuple[str, str], ...] = ()  # (name, path in the JSON answer): `rendering.py`
    attach: tuple[str, str] | None = None  # (form field, file URL): sent as multipart/form-data


SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
SHOWN_BODY = 4096


def as_text(request: WebhookRequest, url: str, body_limit: int | None = None) -> str:
    """The request as a person reads it: the method and `url` (as the caller shows it), the
    query, the headers, the body (its first `body_limit` bytes)."""
    lines = [f"{request.method} {url}"]
    lines += [f"query: {urlencode(request.params)}"] if request.params else []
    lines += [f"{key}: {value}" for key, value in request.headers.items()]
    if request.attach:
        lines.append(f"(multipart/form-data: {request.attach[0]} = the file at {request.attach[1]})")
    body = (request.body or b"")[:body_limit].decode(errors="replace")
    return "\n".join(lines) + (f"\n\n{body}" if body else "")


def described(request: WebhookRequest, secrets: Iterable[str] = ()) -> str:
    """The request as the attempt log keeps it, without secrets: the URL as `endpoint_address`
    names it (a path or query may be a token), credentials masked, every link's query (a
    recording link's token) hidden, the endpoint's own `secrets` (its token) wherever they are."""
    headers = {k: "***" if k.lower() in SECRET_HEADERS else v for k, v in request.headers.items()}
    attach = (request.attach[0], endpoint_address(request.attach[1])) if request.attach else None
    params = {k: redact(v) for k, v in request.params.items()} if request.params else None
    body = redact((request.body or b"")[:SHOWN_BODY].decode(errors="replace")).encode()
    shown = replace(request, headers=headers, attach=attach, params=params, body=body)
    return masked(as_text(shown, endpoint_address(request.url)), secrets)


def masked(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text
