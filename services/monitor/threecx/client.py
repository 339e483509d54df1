"""Talking to a 3CX v20 PBX over HTTP: one access token for the whole monitor, JSON requests.

3CX keeps one valid access token per API client: minting a new one kills the old. So one
`TokenManager` serves every request of the process; it mints a token when there is none, renews
it before it expires, and mints a fresh one when the PBX answers 401 to the token in use (only
once, however many requests saw the 401 at the same time). `expires_in` is in seconds from
20.0.9 and was in minutes before (`60`): values under 300 are read as minutes
(docs/3cx.md §1.2).

Errors say what to do in plain words (`PbxError` and its kinds); the client secret and tokens
never appear in them or in the log.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from pydantic import SecretStr

from shared.logging import redact

logger = logging.getLogger(__name__)

MINUTES_BELOW = 300  # an expires_in under this is in minutes (3CX before 20.0.9)
RENEW_AHEAD = 0.2  # renew when this share of the token's lifetime is left


class PbxError(Exception):
    """The PBX could not be used; the message says why and what to check."""


class PbxUnreachable(PbxError):
    pass


class PbxCredentialsRefused(PbxError):
    pass


class PbxAccessDenied(PbxError):
    pass


class TokenManager:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        client_id: str,
        secret: SecretStr,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session, self._url = session, url.rstrip("/")
        self._where = redact(self._url)  # for messages: a URL may carry a password
        self._client_id, self._secret = client_id, secret
        self._monotonic = monotonic
        self._token: str | None = None
        self._renew_at = 0.0
        self._minting = asyncio.Lock()
        self.minted = 0  # tokens minted so far (each one ended the one before)

    async def token(self) -> str:
        if self._token is not None and self._monotonic() < self._renew_at:
            return self._token
        async with self._minting:
            if self._token is None or self._monotonic() >= self._renew_at:
                await self._mint()
            assert self._token is not None
            return self._token

    async def refused(self, token: str) -> str:
        """The PBX answered 401 to `token`: mint a new one, unless that happened meanwhile."""
        async with self._minting:
            if self._token == token:
                self._token = None
                await self._mint()
            assert self._token is not None
            return self._token

    async def _mint(self) -> None:
        form = {
            "client_id": self._client_id,
            "client_secret": self._secret.get_secret_value(),
            "grant_type": "client_credentials",
        }
        try:
            async with self._session.post(f"{self._url}/connect/token", data=form) as response:
                if response.status in (400, 401):
                    raise PbxCredentialsRefused(
                        f"3CX at {self._where} refused the API client {self._client_id!r}: check [pbx] "
                        "client_id and client_secret (Admin Console → Integrations → API), and the Console "
                        "Restrictions IP allow-list"
                    )
                if response.status == 404:
                    raise PbxError(
                        f"{self._where} has no /connect/token: is it a 3CX v20 (earlier versions have no "
                        "such API)? check [pbx] url"
                    )
                if response.status >= 400:
                    raise PbxError(f"3CX at {self._where} answered {response.status} when asked for a token")
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise PbxUnreachable(
                f"3CX not reachable at {self._where}: {error or 'no answer in time'}"
            ) from None
        except ValueError:
            raise PbxError(
                f"{self._where} answered the token request with something that is not JSON"
            ) from None
        try:
            lifetime = float(answer.get("expires_in") or 0)
            token = str(answer["access_token"])
        except (AttributeError, KeyError, TypeError, ValueError):
            raise PbxError(
                f"{self._where} gave no access_token and lifetime for the API client: is [pbx] url a 3CX v20?"
            ) from None
        seconds = lifetime * 60 if 0 < lifetime < MINUTES_BELOW else lifetime
        self._token = token
        self._renew_at = self._monotonic() + max(seconds * (1 - RENEW_AHEAD), 1.0)
        self.minted += 1
        logger.info("3CX: access token %d minted, valid %.0f s", self.minted, seconds)


class PbxClient:
    """JSON over HTTP with the shared token; a 404 is `None` (an entity that is gone)."""

    def __init__(self, session: aiohttp.ClientSession, url: str, tokens: TokenManager) -> None:
        self._session, self._url, self._tokens = session, url.rstrip("/"), tokens
        self._where = redact(self._url)  # for messages: a URL may carry a password
        self.version = ""  # from the X-3CX-Version header, once the PBX has said it

    @property
    def url(self) -> str:
        return self._url

    @property
    def where(self) -> str:
        """The PBX's address for messages: a password the URL holds, masked."""
        return self._where

    @property
    def tokens(self) -> TokenManager:
        return self._tokens

    async def get(self, path: str) -> Any:
        return await self.request("GET", path)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        token = await self._tokens.token()
        for attempt in (1, 2):
            try:
                async with self._session.request(
                    method, f"{self._url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    self.version = response.headers.get("X-3CX-Version", self.version)
                    if response.status == 401 and attempt == 1:
                        token = await self._tokens.refused(token)
                        continue
                    if response.status == 404:
                        return None
                    if response.status == 403:
                        raise PbxAccessDenied(
                            f"3CX refused {path} (403): tick the API client's access (Call Control, XAPI) in "
                            "Integrations → API, add the extensions to monitor, and check the licence "
                            "(Enterprise / AI Edition is needed)"
                        )
                    if response.status >= 400:
                        text = (await response.text())[:200]
                        raise PbxError(f"3CX answered {response.status} to {method} {path}: {text}")
                    if response.status == 204:
                        return {}
                    return await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as error:
                raise PbxUnreachable(
                    f"3CX not reachable at {self._where}: {error or 'no answer in time'}"
                ) from None
            except ValueError:
                raise PbxError(f"3CX answered {method} {path} with something that is not JSON") from None
        raise PbxCredentialsRefused(f"3CX refused a fresh token for {path}: the API client may be disabled")
