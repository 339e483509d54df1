"""The four services in one process (the demo's runner) on a thread of their own, for the
browser tests: a scenario played live from now, its webhooks to a receiver that fails the first
`failures` requests (one retry, soon, so one delivery is dead-lettered), recordings converted
and served, the api and the webhooks' admin routes on free ports."""

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import httpx
from pydantic import SecretStr

from services.recordings.transcode import processes
from services.recordings.work import Pool
from shared.clock import ScaledClock
from shared.http_server import free_port
from shared.settings import ApiSettings, EndpointSettings, Settings
from simulation.driver import SimulatorDriver, playable_scenario
from simulation.runner import OneProcess, play
from tests.receiver import Answer, Received, Receiver

KEY = "dashboard-full-key-0123456789"
READ_ONLY_KEY = "dashboard-read-only-key-0123"
CALLER = "420777000111"
RINGS_AT = 5.0  # seconds after the stack starts: the scenario's call arrives
SCENARIO = f"""
start: "2000-01-01T00:00:00"
steps:
  - {{t: {RINGS_AT}, do: incoming, call: A, from: "{CALLER}", did: PragueDID, to: "800"}}
  - {{t: {RINGS_AT + 0.5}, do: ring, call: A, dn: ["101", "102"]}}
  - {{t: {RINGS_AT + 3}, do: answer, call: A, dn: "101"}}
  - {{t: {RINGS_AT + 6}, do: hangup, call: A, by: external}}
  - {{t: 600, do: unregister, dn: "106"}}
"""


@dataclass
class Stack:
    api: str  # http://127.0.0.1:port
    started: float  # time.time() when the scenario's t = 0 was
    receiver: Receiver


@contextlib.contextmanager
def running_stack(folder: Path, failures: int = 2) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="callbridge stack", daemon=True)
    thread.start()
    receiver = Receiver(answer=_failing_first(failures))
    up: Future[Stack] = Future()
    with Pool(lambda: processes(1)) as pool:
        task = asyncio.run_coroutine_threadsafe(_serve(folder, receiver, pool, up), loop)
        try:
            stack = up.result(timeout=30)
            yield stack
        finally:
            task.cancel()
            with contextlib.suppress(BaseException):
                task.result(timeout=15)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)


def _failing_first(count: int) -> Answer:
    def answer(request: Received, receiver: Receiver) -> tuple[int, dict[str, str]]:
        return (500 if len(receiver.requests) < count else 200), {}

    return answer


async def _serve(folder: Path, receiver: Receiver, pool: Pool, up: "Future[Stack]") -> None:
    async with receiver:
        settings = _settings(folder, receiver.url)
        scenario_file = folder / "scenario.yaml"
        scenario_file.write_text(SCENARIO)
        zone = settings.pbx.zone
        scenario = replace(playable_scenario(scenario_file), start=datetime.now(zone).replace(tzinfo=None))
        clock = ScaledClock(scenario.start.replace(tzinfo=zone))
        started = time.time()
        driver = SimulatorDriver.for_scenario(scenario, clock, zone, folder / "pbx", live=True)
        run = OneProcess(settings, driver, clock, "browser/1", serve_api=True, converting=pool, live=True)
        run.serve_admin = True
        playing = asyncio.ensure_future(play(run))
        api = f"http://127.0.0.1:{settings.api.http_port}"
        await _until_up(api)
        up.set_result(Stack(api, started, receiver))
        await playing


async def _until_up(api: str) -> None:
    async with httpx.AsyncClient() as client, asyncio.timeout(20):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{api}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)


def _settings(folder: Path, url: str) -> Settings:
    admin, recordings = free_port(), free_port()
    base = Settings()
    return base.model_copy(
        update={
            "api": ApiSettings(
                http_port=free_port(),
                keys=(SecretStr(KEY),),
                read_only_keys=(SecretStr(READ_ONLY_KEY),),
                webhooks_admin_url=f"http://127.0.0.1:{admin}",
            ),
            "webhooks": base.webhooks.model_copy(
                update={"http_port": admin, "retry_schedule": (0.3,), "jitter": 0.0}
            ),
            "recordings": base.recordings.model_copy(
                update={
                    "pbx_dir": folder / "pbx",
                    "archive_dir": folder / "archive",
                    "database": folder / "recordings.db",
                    "http_host": "127.0.0.1",
                    "http_port": recordings,
                    "public_url": f"http://127.0.0.1:{recordings}",
                    "scan_interval": 1.0,
                    "settle": 1.0,
                    "quiet": 1.0,
                }
            ),
            "endpoints": {"crm": EndpointSettings(url=url)},
        }
    )
