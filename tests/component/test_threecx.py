"""The 3CX driver's HTTP side against the fake 3CX on 127.0.0.1: one token for the whole monitor
(minutes or seconds, renewed early, minted again once after a 401), the directory from XAPI, and
`callbridge pbx check` with plain-language errors."""

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from pydantic import SecretStr

from services.cli.main import main as callbridge
from services.monitor.threecx.client import (
    PbxAccessDenied,
    PbxClient,
    PbxCredentialsRefused,
    PbxUnreachable,
    TokenManager,
)
from services.monitor.threecx.driver import ThreeCxDriver
from services.monitor.threecx.xapi import load_directory, profile_of
from services.monitor.updates import ParticipantUpdate
from services.webhooks.classic import classic_payload
from shared.call_state import CallState
from shared.clock import SystemClock
from shared.commands import MakeCall, SetForwarding, SetOptions, SetQueueLogin
from shared.event_base import Event
from shared.events import CallEnded, CallEvent, unpacked
from shared.http_server import free_port
from shared.memory_bus import InMemoryBus
from shared.settings import MonitorSettings, PbxSettings, Settings
from simulation.fake3cx import FakePbx, Switches
from simulation.playback import through_fake_3cx
from simulation.scenario import default_directory, load_scenario
from tests.conftest import EXAMPLES, check_webhooks
from tests.fakes import Recorder, follow


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
    directory = (await load_directory(PbxClient(http, url, tokens(fake, url, http)))).directory
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
    assert await asyncio.to_thread(callbridge, ["--config", str(config), "pbx", "check"]) == 0
    out = capsys.readouterr().out
    assert "3CX 20.0.8.1109 at http://127.0.0.1" in out and "extensions: 6 (6 registered)" in out
    assert "queue 800 Sales: agents 101, 102, 105" in out
    assert "trunk 10000 Trunk Prague: DIDs +420221000000 (PragueDID), +420541000000 (BrnoDID)" in out
    assert "Call Control: 9 DNs monitored, 0 calls in progress" in out  # extensions, queues, the IVR

    config.write_text(f"[pbx]\nurl = {url}\nclient_id = {fake.client_id}\nclient_secret = wrong\n")
    assert await asyncio.to_thread(callbridge, ["--config", str(config), "pbx", "check"]) == 1
    assert "refused the API client" in capsys.readouterr().err

    config.write_text(
        f"[pbx]\nurl = {url}\nclient_id = {fake.client_id}\nclient_secret = {fake.client_secret}\n"
    )
    fake.switches.licensed = False
    assert await asyncio.to_thread(callbridge, ["--config", str(config), "pbx", "check"]) == 1
    assert "check the licence" in capsys.readouterr().err

    closed = f"http://127.0.0.1:{free_port()}"
    config.write_text(f"[pbx]\nurl = {closed}\nclient_id = x\nclient_secret = y\n")
    assert await asyncio.to_thread(callbridge, ["--config", str(config), "pbx", "check"]) == 1
    assert "not reachable" in capsys.readouterr().err

    config.write_text("[pbx]\nurl = http://127.0.0.1:9\n")
    assert await asyncio.to_thread(callbridge, ["--config", str(config), "pbx", "check"]) == 2
    assert "[pbx] client_id, client_secret" in capsys.readouterr().err


# --- the driver watching a fake 3CX that plays a scenario -------------------------------------------


async def watch(name: str, switches: Switches) -> tuple[list[Event], FakePbx, ThreeCxDriver]:
    """Play example `name` on the fake 3CX with `switches`; the driver's events, on the tracker
    (each call's state on its own, not in its `pbx.calls` message)."""
    scenario = load_scenario(EXAMPLES / f"{name}.yaml")
    bus, recorder = InMemoryBus(), Recorder()
    await bus.subscribe("test", recorder, bindings=["#"])
    async with through_fake_3cx(scenario, ZoneInfo("UTC"), switches=switches) as (
        fake,
        driver,
        _,
    ):
        await asyncio.wait_for(follow(driver, bus, source="3cx"), 120)
    return [each for e in recorder.events for each in unpacked(e)], fake, driver


def classic(events: list[Event]) -> list[str]:
    return [json.dumps(w) for e in events if isinstance(e, CallEvent) and (w := classic_payload(e))]


@pytest.mark.parametrize(
    "switches",
    [
        Switches(duplicate_upserts=True),
        Switches(get_races_remove=True),
        Switches(empty_did=True),
        Switches(expires_in_minutes=True),
        Switches(get_delay=0.02),
    ],
    ids=[
        "duplicate upserts",
        "a GET racing a remove",
        "empty party_did",
        "expires_in in minutes",
        "a PBX 20 ms away",
    ],
)
async def test_uncertain_behaviours_give_the_same_webhooks(switches: Switches) -> None:
    # (its calls come in on SalesLine and MainLine, each its trunk's first DID: the empty party_did
    # is filled exactly)
    events, fake, _ = await watch("attended-transfer-hold", switches)
    assert check_webhooks("attended-transfer-hold", classic(events), recordings=False) == ""
    if switches.duplicate_upserts or switches.get_races_remove:
        assert fake.entity_gets > len([e for e in events if e.type == "pbx.call"]) / 2  # it really asked
    if switches.get_delay:  # the notices that came together were fetched together, and kept their order
        assert fake.most_gets_at_once > 1


async def test_a_token_revoked_mid_call_is_minted_again() -> None:
    scenario = load_scenario(EXAMPLES / "queue-to-queue-transfer.yaml")
    bus, recorder = InMemoryBus(), Recorder()
    await bus.subscribe("test", recorder, bindings=["#"])
    async with through_fake_3cx(scenario, ZoneInfo("UTC"), speed=100) as (fake, driver, _):
        playing = asyncio.create_task(follow(driver, bus, source="3cx"))
        await recorder.first(lambda e: e.type == "call.answered")
        fake.switches.invalidate_tokens = True  # another process minted a token for our API client
        await asyncio.wait_for(playing, 120)
    assert fake.minted == 2
    assert check_webhooks("queue-to-queue-transfer", classic(recorder.events), recordings=False) == ""


async def test_a_hangup_while_the_socket_is_down_is_repaired_by_the_snapshot() -> None:
    # 206 talks from 70.2 s; the sockets close as the caller hangs up at 250.6 (the first update
    # from 240 s on) and the PBX refuses new ones for 20 s: the hangup goes unseen until the
    # periodic snapshot ([pbx] snapshot_interval, 45 s: at 270 s) finds the participants gone,
    # before the driver's attempts (1, 2, 4, 8, 16 s apart) get the socket back at 281.6 s
    events, _, driver = await watch("queue-to-queue-transfer", Switches(drop_socket_at=240, socket_outage=20))
    assert driver.reconnects == 5
    ends = [e for e in events if isinstance(e, CallEnded) and e.chain_ended]
    first = [e for e in ends if e.chain_id.endswith("_1201")]
    assert len(first) == 1 and first[0].answered and first[0].extension == "206"
    assert first[0].duration == pytest.approx(270 - 70.2)  # ended when the snapshot saw it
    assert not [
        e
        for e in events
        if isinstance(e, CallState)
        and e.call_number == 1201
        and not e.ended
        and e.occurred_at > first[0].occurred_at
    ]
    assert [e for e in ends if e.chain_id.endswith("_1202")]  # the next call, after the outage, as usual


async def test_commands_go_through_call_control_and_xapi() -> None:
    scenario = load_scenario(EXAMPLES / "outgoing-transfer.yaml")
    bus, recorder = InMemoryBus(), Recorder()
    await bus.subscribe("test", recorder, bindings=["#"])
    async with through_fake_3cx(scenario, ZoneInfo("UTC"), speed=50) as (fake, driver, _):
        every_state = Settings(monitor=MonitorSettings(states_every=0))  # the call rings 204 briefly
        playing = asyncio.create_task(follow(driver, bus, source="3cx", settings=every_state))
        await asyncio.wait_for(driver.connected.wait(), 10)
        assert (await driver.execute(SetForwarding(extension="204", profile="Away"))).ok
        assert (await driver.execute(SetQueueLogin(extension="203", queue="all", logged_in=False))).ok
        assert (await driver.execute(SetOptions(extension="204", recording="all"))).ok
        one_queue = await driver.execute(SetQueueLogin(extension="203", queue="810", logged_in=False))
        assert one_queue.failure == "refused" and "ext.queueglobal.set" in one_queue.reason
        assert (await driver.execute(MakeCall(first="999", second="1"))).failure == "not_found"
        made = await driver.execute(MakeCall(first="204", second="420777000999"))
        assert made.ok and made.call_number is not None

        def dialling(e: Event) -> bool:
            return (
                isinstance(e, CallState)
                and e.call_number == made.call_number
                and e.direction == "FromInternal"
            )

        batch = await recorder.first(lambda e: any(map(dialling, unpacked(e))))
        ringing = next(each for each in unpacked(batch) if dialling(each))
        assert isinstance(ringing, CallState) and ringing.legs[0].dn == "204"
        await asyncio.wait_for(playing, 120)
    types = [e.type for e in recorder.events]
    assert {"extension.forwarding", "extension.queue_login", "extension.options"} <= set(types)
    directory = fake._directory_now()
    changed = {e.number: e for e in directory.extensions}
    assert changed["204"].profile == "Away" and changed["204"].recording == "all"
    assert not changed["203"].queue_logged_in  # the PBX itself changed, as XAPI asked


async def test_what_the_socket_says_during_a_snapshot_wins() -> None:
    """A call that begins while a periodic snapshot is on its way is missing from that snapshot:
    it must not be removed as vanished, nor a newer state overwritten by the older one."""
    fake = FakePbx(default_directory())
    async with fake.serving(free_port()) as url:
        settings = PbxSettings(
            driver="3cx",
            url=url,
            client_id=fake.client_id,
            client_secret=SecretStr(fake.client_secret),
            snapshot_interval=0.05,
        )
        driver = ThreeCxDriver(settings, SystemClock(), grace=60)
        updates: list[ParticipantUpdate] = []
        arrived = asyncio.Condition()

        async def collect() -> None:
            async for update in driver.updates():
                if isinstance(update, ParticipantUpdate):
                    async with arrived:
                        updates.append(update)
                        arrived.notify_all()

        collecting = asyncio.create_task(collect())
        await asyncio.wait_for(driver.connected.wait(), 10)
        fake.snapshot_gate, fake.snapshot_asked = asyncio.Event(), asyncio.Event()
        await asyncio.wait_for(fake.snapshot_asked.wait(), 10)  # a snapshot taken with no call
        now = datetime.now(UTC)
        leg = ParticipantUpdate(
            at=now, dn="101", dn_type="Extension", id=7, callid=900, legid=1, status="Ringing",
            party_caller_id="420777000111", party_dn="10000", party_dn_type="ExternalLine",
        )  # fmt: skip
        for state in (leg, replace(leg, status="Connected")):
            await fake.publish(state)
            async with asyncio.timeout(10), arrived:
                await arrived.wait_for(
                    lambda s=state: any(u.dn == "101" and u.status == s.status for u in updates)
                )
        fake.snapshot_asked.clear()
        fake.snapshot_gate.set()  # the old snapshot arrives now
        await asyncio.wait_for(fake.snapshot_asked.wait(), 10)  # and the driver is done with it
        fake.snapshot_gate = None
        collecting.cancel()
        await asyncio.gather(collecting, return_exceptions=True)
    ours = [u for u in updates if u.dn == "101"]
    assert [(u.status, u.removed) for u in ours] == [("Ringing", False), ("Connected", False)]
