"""The 3CX driver's HTTP side against the fake 3CX on 127.0.0.1: one token for the whole monitor
(minutes or seconds, renewed early, minted again once after a 401), the directory from XAPI, and
`callbridge pbx check` with plain-language errors."""

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from pydantic import SecretStr

from services import cli
from services.monitor.scenario import default_directory
from services.monitor.threecx.client import (
    PbxAccessDenied,
    PbxClient,
    PbxCredentialsRefused,
    PbxUnreachable,
    TokenManager,
)
from services.monitor.threecx.fake import FakePbx, Switches
from services.monitor.threecx.xapi import load_directory, profile_of
from tests.conftest import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pbx() -> AsyncIterator[tuple[FakePbx, str]]:
    fake = FakePbx(default_directory())
    async with fake.serving(free_port()) as url:
        yield fake, url


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def tokens(fake: FakePbx, url: str, http: aiohttp.ClientSession, clock: Clock | None = None) -> TokenManager:
    return TokenManager(http, url, fake.client_id, SecretStr(fake.client_secret), monotonic=clock or Clock())


@pytest.mark.parametrize(("minutes", "lifetime"), [(False, 3600.0), (True, 3600.0)])
async def test_a_token_is_renewed_before_it_expires_whatever_the_unit(
    pbx: tuple[FakePbx, str], http: aiohttp.ClientSession, minutes: bool, lifetime: float
) -> None:
    fake, url = pbx
    fake.switches = Switches(expires_in_minutes=minutes)  # 60 (minutes) before 20.0.9, 3600 (seconds) since
    clock = Clock()
    manager = tokens(fake, url, http, clock)
    first = await manager.token()
    clock.now += lifetime * 0.75  # still well within its life: the same token
    assert await manager.token() == first and fake.minted == 1
    clock.now += lifetime * 0.1  # 85 % of it gone: renewed ahead of expiry
    assert await manager.token() != first and fake.minted == 2


async def test_a_revoked_token_is_minted_again_once_for_all_waiting_requests(
    pbx: tuple[FakePbx, str], http: aiohttp.ClientSession
) -> None:
    fake, url = pbx
    client = PbxClient(http, url, tokens(fake, url, http))
    assert (await client.get("/xapi/v1/Users"))["value"]
    fake.switches.invalidate_tokens = True  # another process minted a token with our client id
    answers = await asyncio.gather(*(client.get("/xapi/v1/Queues") for _ in range(10)))
    assert all(a["value"] for a in answers)
    assert fake.minted == 2  # not one per request: each mint would end the one before
    assert client.version == "20.0.8.1109"


async def test_the_directory_comes_from_xapi(pbx: tuple[FakePbx, str], http: aiohttp.ClientSession) -> None:
    fake, url = pbx
    directory = await load_directory(PbxClient(http, url, tokens(fake, url, http)))
    assert directory == default_directory()  # names, agents, members, recording options, DIDs and their rules


def test_forwarding_profiles_read_in_both_namings() -> None:
    assert [profile_of(n) for n in ("Available", "Away", "OutOfOffice", "Out of office", "Available2")] == [
        "Available",
        "Away",
        "Out of office",
        "Out of office",
        "Custom 1",
    ]
    assert profile_of("Lunch") == "Available"


async def test_wrong_credentials_unlicensed_and_unreachable_say_so(
    pbx: tuple[FakePbx, str], http: aiohttp.ClientSession
) -> None:
    fake, url = pbx
    wrong = TokenManager(http, url, fake.client_id, SecretStr("not-the-secret"))
    with pytest.raises(PbxCredentialsRefused, match="client_id and client_secret") as refused:
        await wrong.token()
    assert "not-the-secret" not in str(refused.value)
    fake.switches.licensed = False
    with pytest.raises(PbxAccessDenied, match="licence"):
        await PbxClient(http, url, tokens(fake, url, http)).get("/callcontrol")
    closed = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(PbxUnreachable, match="not reachable"):
        await TokenManager(http, closed, "x", SecretStr("y")).token()


async def test_pbx_check_prints_what_the_pbx_shows(
    pbx: tuple[FakePbx, str], tmp_path: pytest.TempPathFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    fake, url = pbx
    config = tmp_path / "callbridge.ini"  # type: ignore[operator]
    config.write_text(
        f"[pbx]\nurl = {url}\nclient_id = {fake.client_id}\nclient_secret = {fake.client_secret}\n"
    )
    assert await asyncio.to_thread(cli.main, ["--config", str(config), "pbx", "check"]) == 0
    out = capsys.readouterr().out
    assert "3CX 20.0.8.1109 at http://127.0.0.1" in out and "extensions: 6 (6 registered)" in out
    assert "queue 800 Sales: agents 101, 102, 105" in out
    assert "trunk 10000 Trunk Prague: DIDs +420221000000 (PragueDID), +420541000000 (BrnoDID)" in out
    assert "Call Control: 6 DNs monitored, 0 calls in progress" in out

    config.write_text(f"[pbx]\nurl = {url}\nclient_id = {fake.client_id}\nclient_secret = wrong\n")
    assert await asyncio.to_thread(cli.main, ["--config", str(config), "pbx", "check"]) == 1
    assert "refused the API client" in capsys.readouterr().err

    config.write_text("[pbx]\nurl = http://127.0.0.1:9\n")
    assert await asyncio.to_thread(cli.main, ["--config", str(config), "pbx", "check"]) == 2
    assert "[pbx] client_id, client_secret" in capsys.readouterr().err
