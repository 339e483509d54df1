"""API keys: `key=` in the query, an `X-API-Key` header, or `Authorization: Bearer`.

Keys come from `[api] keys` (may read and send commands) and `[api] read_only_keys`; the API
and the webhooks service's admin routes (`requires` on routes of an app whose `state.keys` is
set) take the same keys. Every offered key is compared with every configured one in constant
time, so neither the answer nor its timing tells how much of a key was right. Keys are never
logged: uvicorn's access log, which would print the query string, stays off.
"""

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Query, Request
from pydantic import SecretStr

CHALLENGE = {"WWW-Authenticate": "Bearer"}


class Access(Enum):
    READ = "read"
    COMMAND = "command"


KeyQuery = Annotated[
    str | None, Query(description="your API key (or send it as `X-API-Key` or `Authorization: Bearer`)")
]
KeyHeader = Annotated[str | None, Header(description="your API key")]
BearerHeader = Annotated[str | None, Header(description="`Bearer <your API key>`")]


class Keys:
    def __init__(self, full: tuple[SecretStr, ...], read_only: tuple[SecretStr, ...]) -> None:
        self._keys = [(k.get_secret_value().encode(), Access.COMMAND) for k in full]
        self._keys += [(k.get_secret_value().encode(), Access.READ) for k in read_only]

    def access(self, offered: str) -> Access | None:
        candidate = offered.encode("utf-8", "surrogateescape")
        granted: Access | None = None
        for key, access in self._keys:  # no early exit: the time taken does not depend on a match
            if hmac.compare_digest(candidate, key) and granted is not Access.COMMAND:
                granted = access
        return granted


def fingerprint(key: str) -> str:
    """How a key is named in audit lines and rate limits: the start of its SHA-256, which tells
    keys apart without telling anything about them."""
    return "key:" + hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def requires(needed: Access) -> Callable[..., Awaitable[None]]:
    """A dependency: the request offers a key with `needed` access (the app's `state.keys`)."""

    async def check(
        request: Request,
        key: KeyQuery = None,
        x_api_key: KeyHeader = None,
        authorization: BearerHeader = None,
    ) -> None:
        keys: Keys = request.app.state.keys
        offered = [k for k in (key, x_api_key, bearer(authorization)) if k]
        if not offered:
            raise HTTPException(
                401, "an API key is needed: key=…, X-API-Key or Authorization: Bearer", CHALLENGE
            )
        grants = [(candidate, keys.access(candidate)) for candidate in offered]
        for candidate, access in grants:
            if access is Access.COMMAND or (needed is Access.READ and access is Access.READ):
                request.state.key = fingerprint(candidate)  # for the audit line and the rate limit
                request.state.offered, request.state.access = candidate, access  # for forwarding it
                return
        if any(access is Access.READ for _, access in grants):
            raise HTTPException(403, "this API key may only read; commands need a full key")
        raise HTTPException(401, "wrong API key", CHALLENGE)

    return check


def bearer(authorization: str | None) -> str | None:
    """The key in an `Authorization: Bearer …` header."""
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


READ = [Depends(requires(Access.READ))]  # a route's `dependencies`: any key
COMMAND = [Depends(requires(Access.COMMAND))]  # a full key
