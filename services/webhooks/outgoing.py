"""An HTTP request as the webhooks service sends it (whatever the endpoint's format made it), and
as the attempt log keeps it: without its secrets."""

from dataclasses import dataclass, field
from urllib.parse import urlencode

from shared.logging import endpoint_address

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


def described(request: WebhookRequest) -> str:
    """The request as the attempt log keeps it, without secrets: the URL as `endpoint_address`
    names it (a path or query may be a token), credentials masked, the body's start."""
    lines = [f"{request.method} {endpoint_address(request.url)}"]
    lines += [f"query: {urlencode(request.params)}"] if request.params else []
    lines += [f"{k}: {'***' if k.lower() in SECRET_HEADERS else v}" for k, v in request.headers.items()]
    if request.attach:
        lines.append(f"(multipart/form-data: {request.attach[0]} = {endpoint_address(request.attach[1])})")
    body = (request.body or b"")[:SHOWN_BODY].decode(errors="replace")
    return "\n".join(lines) + (f"\n\n{body}" if body else "")
