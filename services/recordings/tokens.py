"""Signed, expiring download links: `?expires=<unix time>&token=<HMAC-SHA256>`. Pure.

The token signs the file name and the expiry with the configured secret, so a link works for
one file until it expires, and nobody can make one without the secret.
"""

import hashlib
import hmac
from urllib.parse import urlencode


def _mac(secret: bytes, name: str, expires: int) -> str:
    return hmac.new(secret, f"{name}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_query(secret: bytes, name: str, expires: int) -> str:
    return urlencode({"expires": expires, "token": _mac(secret, name, expires)})


def check(secret: bytes, name: str, expires: int, token: str, now: float) -> bool:
    """Whether `token` is the link's and the link has not expired; any string may be offered
    (compared as bytes: a non-ASCII token is simply wrong)."""
    offered = token.encode("utf-8", "surrogateescape")
    return expires >= now and hmac.compare_digest(_mac(secret, name, expires).encode(), offered)


def download_url(public_url: str, secret: bytes, name: str, expires: int) -> str:
    return f"{public_url.rstrip('/')}/webapi/recording/{name}?{signed_query(secret, name, expires)}"
