"""A scenario played by the fake 3CX and watched by the 3CX driver, both on one clock: what
`callbridge scenario run --via fake-3cx` and the driver's tests run."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from shared.clock import ScaledClock
from shared.http_server import free_port
from shared.settings import PbxSettings

from ..drivers import SimulatorDriver
from ..scenario import Scenario
from .driver import ThreeCxDriver
from .fake import FakePbx, Switches


@contextlib.asynccontextmanager
async def through_fake_3cx(
    scenario: Scenario,
    zone: ZoneInfo,
    *,
    speed: float,
    recordings: Path | None = None,
    switches: Switches | None = None,
    grace: float = 2.0,
) -> AsyncIterator[tuple[FakePbx, ThreeCxDriver, ScaledClock]]:
    """The fake PBX plays `scenario` in real time × `speed`; the driver's updates end once the
    scenario has been played and every call it saw has ended."""
    clock = ScaledClock(scenario.start.replace(tzinfo=zone), speed)
    fake = FakePbx(
        scenario.directory,
        calls=SimulatorDriver.for_scenario(scenario, clock, zone, recordings),
        switches=switches or Switches(),
    )
    async with fake.serving(free_port()) as url:
        settings = PbxSettings(
            driver="3cx", url=url, client_id=fake.client_id, client_secret=SecretStr(fake.client_secret)
        )
        driver = ThreeCxDriver(settings, clock, grace=grace)

        async def finish_when_played() -> None:
            await fake.played.wait()
            driver.finish()

        finishing = asyncio.create_task(finish_when_played())
        try:
            yield fake, driver, clock
        finally:
            finishing.cancel()
