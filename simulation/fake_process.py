"""`callbridge pbx fake`: the fake 3CX (`fake3cx.py`) as a process of its own, for trying the 3CX
driver, and for tests that kill or restart a monitor while the PBX goes on (tests/chaos).

It serves on 127.0.0.1 at the port of `[pbx] url`, takes the credentials of `[pbx] client_id`
and `client_secret` (the monitor's own configuration file serves both), and plays the simulator
of `[simulator]`: a scenario at `speed` times real time, or generated traffic; after a scenario
it goes on answering (no calls) until SIGTERM or Ctrl-C. `start_now`: the scenario begins now
rather than at its `start` (at speed 1 its times, and its WAV recordings' names, are then the
wall clock's, as the driver's are)."""

import asyncio
import logging
from urllib.parse import urlsplit

from services.monitor.threecx.check import check_pbx_settings
from shared.lifecycle import wait_for_shutdown
from shared.logging import configure_logging
from shared.settings import ConfigError, Settings

from .configured import simulator_driver
from .fake3cx import FakePbx, Switches

logger = logging.getLogger(__name__)


async def serve_fake(
    settings: Settings, switches: Switches | None = None, *, start_now: bool = False
) -> None:
    configure_logging(settings.log.level, settings.log.json_lines)
    check_pbx_settings(settings.pbx)
    assert settings.pbx.client_secret is not None
    address = urlsplit(settings.pbx.url)
    if address.hostname not in ("127.0.0.1", "localhost") or address.port is None:
        raise ConfigError(
            f"[pbx] url {settings.pbx.url!r}: the fake 3CX serves on 127.0.0.1 at a port you name"
        )
    driver, _ = simulator_driver(settings, start_now=start_now)
    fake = FakePbx(
        driver.simulator.directory,
        calls=driver,
        client_id=settings.pbx.client_id,
        client_secret=settings.pbx.client_secret.get_secret_value(),
        switches=switches or Switches(),
    )

    async def played() -> None:
        await fake.played.wait()
        logger.info("fake 3CX: the scenario has been played")

    async with fake.serving(address.port) as url:
        logger.info("fake 3CX on %s", url)
        telling = asyncio.create_task(played())
        await wait_for_shutdown()
        telling.cancel()
    logger.info("fake 3CX stopped")
