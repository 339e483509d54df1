"""`callbridge demo`: the simulator's live traffic through the four services in one process, its
classic webhooks delivered to a built-in receiver that prints each as a line (or to your own
URL), the API on localhost, the calls' recordings converted and served."""

import asyncio
import logging
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr

from services.monitor.main import new_source
from services.recordings.transcode import processes
from services.recordings.work import Pool
from shared import lifecycle
from shared.http_server import free_port
from shared.logging import configure_logging
from shared.settings import EndpointSettings, Settings

from . import receiver
from .configured import simulator_driver
from .runner import OneProcess, play


@dataclass(frozen=True)
class Demo:
    directory: Path | None = None  # default: the built-in one
    calls_per_minute: float = 6.0  # 0: only the calls the API's makecall makes
    duration: float | None = None  # stop after so many seconds
    seed: int | None = None
    webhook_url: str | None = None  # instead of the built-in receiver
    api_port: int = 8080  # 0: no API
    api_key: SecretStr | None = None  # default: [api] keys, else a fresh one, printed
    recordings_port: int = 8090  # 0: no recordings


def run_demo(
    settings: Settings, options: Demo, out: TextIO = sys.stdout, notices: TextIO = sys.stderr
) -> int:
    configure_logging(settings.log.level)
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)  # the demo prints its own addresses
    with (
        tempfile.TemporaryDirectory(prefix="callbridge-demo-") as scratch,
        Pool(lambda: processes(1)) as pool,
    ):
        run = _one_process(settings, options, Path(scratch), out, notices)
        if options.recordings_port:
            run.converting = pool
        running = _delivered(run, options)
        try:
            lifecycle.run(asyncio.wait_for(running, options.duration) if options.duration else running)
        except (TimeoutError, KeyboardInterrupt):  # --duration ran out, or Ctrl-C: both end a demo
            notices.write("demo stopped\n")
    return 0


def _one_process(
    settings: Settings, options: Demo, scratch: Path, out: TextIO, notices: TextIO
) -> OneProcess:
    simulator = settings.simulator.model_copy(
        update={
            "calls_per_minute": options.calls_per_minute,
            "seed": options.seed,
            "directory": options.directory,
            "scenario": None,
            "record": bool(options.recordings_port),
            "recordings_dir": scratch / "pbx",
        }
    )
    recordings = settings.recordings.model_copy(
        update={
            "pbx_dir": scratch / "pbx",
            "archive_dir": scratch / "archive",
            "database": scratch / "recordings.db",
            "http_host": "127.0.0.1",
            "http_port": options.recordings_port,
            "public_url": f"http://127.0.0.1:{options.recordings_port}",
            "tls_cert": None,
            "tls_key": None,
            "scan_interval": 1.0,
            "settle": 1.0,
            "quiet": 2.0,
        }
    )
    keys = (options.api_key,) if options.api_key else settings.api.keys
    admin_port = free_port() if options.api_port else 0  # the dashboard's way to the webhooks' admin
    api = settings.api.model_copy(
        update={
            "http_host": "127.0.0.1",
            "http_port": options.api_port,
            "keys": keys or (SecretStr(secrets.token_urlsafe(24)),),
            "webhooks_admin_url": f"http://127.0.0.1:{admin_port}",
        }
    )
    webhooks = settings.webhooks.model_copy(update={"http_host": "127.0.0.1", "http_port": admin_port})
    configured = settings.model_copy(
        update={"simulator": simulator, "recordings": recordings, "api": api, "webhooks": webhooks}
    )
    driver, clock = simulator_driver(configured)
    return OneProcess(
        configured,
        driver,
        clock,
        new_source("demo"),
        out=out,
        notices=notices,
        serve_api=bool(options.api_port),
        show_key=keys != settings.api.keys or not keys,  # typed on the command line, or made now
        live=True,
        serve_admin=bool(options.api_port),
    )


async def _delivered(run: OneProcess, options: Demo) -> int:
    if options.webhook_url:
        return await play(_to(run, options.webhook_url))
    async with receiver.receiving(run.out) as url:  # the webhooks service delivers to it
        run.notices.write(f"callbridge: classic webhooks delivered to the built-in receiver at {url}\n")
        if run.converting is not None:
            run.notices.write(
                f"callbridge: recordings (MP3) served on {run.settings.recordings.public_url}/ "
                "(each recording line carries its download link)\n"
            )
        run.out.write(receiver.HEADER + "\n")
        run.out.flush()
        return await play(_to(run, url))


def _to(run: OneProcess, url: str) -> OneProcess:
    run.settings = run.settings.model_copy(update={"endpoints": {"demo": EndpointSettings(url=url)}})
    return run
