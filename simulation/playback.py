"""A scenario played by the fake 3CX and watched by the 3CX driver, both on one clock: what
`callbridge scenario run --via fake-3cx` and the driver's tests run.

The clock is a `LockstepClock`: PBX time moves on only once the driver has read every notice the
fake sent and has nothing in hand, so each update is stamped with the very moment the fake made
it, whatever the machine's load. A playback gives the same webhooks as the simulator alone."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from services.monitor.threecx.driver import ThreeCxDriver
from shared.clock import LockstepClock
from shared.http_server import free_port
from shared.settings import PbxSettings

from .driver import SimulatorDriver
from .fake3cx import FakePbx, Switches
from .scenario import Scenario


@contextlib.asynccontextmanager
async def through_fake_3cx(
    scenario: Scenario,
    zone: ZoneInfo,
    *,
    speed: float | None = None,
    recordings: Path | None = None,
    switches: Switches | None = None,
    grace: float = 2.0,
) -> AsyncIterator[tuple[FakePbx, ThreeCxDriver, LockstepClock]]:
    """The fake PBX plays `scenario` as fast as the driver keeps up (with `speed`: no faster than
    that many times real time); the driver's updates end once the scenario has been played and
    every call it saw has ended."""
    fake: FakePbx | None = None
    driver: ThreeCxDriver | None = None

    def settled() -> bool:
        return fake is not None and driver is not None and driver.caught_up(fake.frames_sent)

    clock = LockstepClock(scenario.start.replace(tzinfo=zone), settled, speed=speed)
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

        chores = [asyncio.create_task(finish_when_played()), asyncio.create_task(clock.run())]
        try:
            yield fake, driver, clock
        finally:
            for chore in chores:
                chore.cancel()
            await asyncio.gather(*chores, return_exceptions=True)
