"""The monitor (a live simulator on a hand-driven clock) and the API on one bus, for API tests.

The test moves the clock; `Stack.until(wanted)` waits for the first event `wanted` accepts and
then for the API's cache to hold it, so an answer is read only once the state it shows exists.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import yaml
from pydantic import SecretStr

from services.api import main as api_main
from shared.bus import Bus
from shared.call_state import CallState
from shared.event_base import Event
from shared.events import unpacked
from shared.settings import ApiSettings, Settings
from simulation.driver import SimulatorDriver
from simulation.scenario import default_directory, parse_scenario
from tests.fakes import ManualClock, Recorder, follow

UTC = ZoneInfo("UTC")
START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
KEY = "full-access-key-0123456789"
READ_ONLY_KEY = "read-only-key-0123456789"
API_SETTINGS = ApiSettings(
    keys=(SecretStr(KEY),), read_only_keys=(SecretStr(READ_ONLY_KEY),), command_timeout=5
)


@dataclass
class Stack:
    api: api_main.Api
    driver: SimulatorDriver
    clock: ManualClock
    recorder: Recorder
    client: httpx.AsyncClient

    async def until(self, wanted: Callable[[Event], bool]) -> Event:
        """The first event `wanted` (a call's state: in its `pbx.calls`), once the api has it."""
        event = await self.recorder.first(lambda e: any(map(wanted, unpacked(e))))
        await asyncio.wait_for(self.api.cache.wait_for(event.seq, event.source), 10)
        return next(each for each in unpacked(event) if wanted(each))

    async def call_state(self, number: int, **fields: object) -> CallState:
        """Wait for call `number` to reach a state with these fields."""

        def matches(event: Event) -> bool:
            return (
                isinstance(event, CallState)
                and event.call_number == number
                and all(getattr(event, k) == v for k, v in fields.items())
            )

        found = await self.until(matches)
        assert isinstance(found, CallState)
        return found

    async def get(self, method: str, key: str | None = KEY, **params: str) -> httpx.Response:
        return await self.client.get(f"/{method}", params=params | ({"key": key} if key else {}))


@contextlib.asynccontextmanager
async def api_stack(
    api_bus: Bus,
    steps: str = "",
    *,
    monitor_bus: Bus | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    settings: ApiSettings = API_SETTINGS,
) -> AsyncIterator[Stack]:
    """The API on `api_bus` (served in-process unless `transport` says otherwise), the monitor on
    `monitor_bus` (the same bus by default), playing `steps` as the test moves the clock."""
    clock = ManualClock(START)
    if steps:
        document = {"start": START.replace(tzinfo=None).isoformat(), "steps": yaml.safe_load(steps)}
        driver = SimulatorDriver.for_scenario(parse_scenario(document, base=Path(".")), clock, UTC, live=True)
    else:
        driver = SimulatorDriver(default_directory(), (), clock, live=True)
    recorder = Recorder()
    await api_bus.subscribe("recorder", recorder, bindings=["#"], exclusive=True)
    playing = asyncio.create_task(follow(driver, monitor_bus or api_bus, source="test/1"))
    try:
        await recorder.first(lambda e: e.type == "pbx.directory")  # the monitor answers requests now
        async with api_main.running(Settings(api=settings), api_bus) as api:
            await asyncio.wait_for(api.cache.wait_ready(), 10)
            http = transport or httpx.ASGITransport(app=api.app)
            async with httpx.AsyncClient(transport=http, base_url="http://api") as client:
                yield Stack(api, driver, clock, recorder, client)
    finally:
        playing.cancel()
        await asyncio.gather(playing, return_exceptions=True)
