"""The four services in one process on the in-memory bus: what `callbridge scenario run` and
`callbridge demo` run. Each service is wired by its own composition root (`running()` in its
`main.py`), exactly as `main()` wires it on RabbitMQ; only the parts differ: the in-memory bus,
a memory job queue and delivery store, conversions as tasks of this process, and the simulator
(or a fake 3CX) as the PBX.

Classic webhooks go to the configured endpoints through the webhooks service (`--webhook-url`,
the demo's receiver), or, with none, are printed as JSON lines: a call event's query
parameters, a recording POST's body.
"""

import contextlib
import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from services.api import main as api_main
from services.monitor import main as monitor_main
from services.monitor.driver import Driver
from services.monitor.outbox import Outbox
from services.recordings import http as recordings_http
from services.recordings import main as recordings_main
from services.recordings.service import Recordings
from services.recordings.work import ConversionJob, Pool, Worker
from services.webhooks import http as webhooks_http
from services.webhooks import main as webhooks_main
from services.webhooks.classic import classic_webhook
from services.webhooks.queues import MemoryJobQueue
from services.webhooks.sender import AiohttpTransport, Transport, new_session
from services.webhooks.store import DeliveryStore
from shared.clock import Clock
from shared.events import Message
from shared.http_server import serving
from shared.keys import Keys
from shared.memory_bus import InMemoryBus
from shared.settings import Settings
from shared.topology import WEBHOOKS_BINDINGS
from shared.work_queue import MemoryWorkQueue


@dataclass
class OneProcess:
    settings: Settings  # as the services should see it: endpoints (none: print), api, recordings
    driver: Driver
    clock: Clock
    source: str  # the monitor run's id on its events
    out: TextIO = sys.stdout  # printed webhooks
    notices: TextIO = sys.stderr  # where the API, the recordings and the failures are announced
    serve_api: bool = False  # the API on [api] http_host:http_port meanwhile
    show_key: bool = True  # print the API's first key (else a stand-in: the configuration's is secret)
    converting: Pool | None = None  # convert the PBX's recordings in this pool
    live: bool = False  # recordings converted and served as they come; else once the calls are over
    transport: Transport | None = None  # how webhooks go out (default: HTTP); the preview's prints
    serve_admin: bool = (
        False  # the webhooks' admin routes on [webhooks] http_host:http_port (the dashboard's)
    )


async def play(run: OneProcess) -> int:
    """Until the driver runs dry (or the caller gives up on a live one); the exit status: 1 when
    some webhook could not be delivered (each named), else 0."""
    bus = InMemoryBus()
    async with contextlib.AsyncExitStack() as stack:
        if run.serve_api:
            await _serve_api(run, bus, stack)
        recordings = await _recordings(run, bus, stack) if run.converting is not None else None
        delivered = await _webhooks(run, bus, stack)
        outbox = Outbox(Path(":memory:"))  # one process: nothing outlives it
        stack.callback(outbox.close)
        async with monitor_main.running(run.settings, bus, run.driver, outbox, source=run.source) as monitor:
            await monitor.finished()
        if recordings is not None and not run.live:  # one pass: every call is over, every file final
            await recordings.scan()
            await recordings.drain()
            await recordings.announce()
        return await delivered()


async def _serve_api(run: OneProcess, bus: InMemoryBus, stack: contextlib.AsyncExitStack) -> None:
    api = run.settings.api
    service = await stack.enter_async_context(api_main.running(run.settings, bus))
    await stack.enter_async_context(serving(service.app, api.http_host, api.http_port))
    key = (api.keys or api.read_only_keys)[0].get_secret_value() if run.show_key else "YOUR-API-KEY"
    address = f"http://{api.http_host}:{api.http_port}"
    run.notices.write(f"callbridge: API on {address}/  key: {key}\n")
    run.notices.write(f"  the dashboard: {address}/ui/ (log in with the key)\n")
    run.notices.write(f"  try: curl '{address}/pbx.callsinfo.get?key={key}'\n")


async def _recordings(run: OneProcess, bus: InMemoryBus, stack: contextlib.AsyncExitStack) -> Recordings:
    assert run.converting is not None
    secret = secrets.token_bytes(32)  # the links of this run only
    workers = run.settings.recordings.workers
    conversions: MemoryWorkQueue[ConversionJob] = MemoryWorkQueue("conversions", workers)
    await conversions.consume(Worker(bus, run.converting, run.clock))
    stack.push_async_callback(conversions.close)
    recordings = await stack.enter_async_context(
        recordings_main.running(run.settings, bus, run.clock, conversions, secret=secret, live=run.live)
    )
    config = run.settings.recordings
    if run.live and config.http_port:
        app = recordings_http.create_app(config.archive_dir, secret, run.clock)
        await stack.enter_async_context(serving(app, config.http_host, config.http_port))
    return recordings


async def _webhooks(
    run: OneProcess, bus: InMemoryBus, stack: contextlib.AsyncExitStack
) -> Callable[[], Awaitable[int]]:
    """Wire the webhooks: delivered to the endpoints, or printed; returns what tells, once the
    calls are over, whether all were delivered."""
    if not run.settings.endpoints:
        await bus.subscribe("webhooks", _printer(run.out), bindings=WEBHOOKS_BINDINGS)
        return _nothing_failed
    store = await DeliveryStore.open(":memory:")
    stack.push_async_callback(store.close)
    queue = MemoryJobQueue(bus, run.clock, run.settings.endpoints)  # closed by `running`
    transport = run.transport or AiohttpTransport(await stack.enter_async_context(new_session()))
    service = await stack.enter_async_context(
        webhooks_main.running(run.settings, bus, queue, store, transport, run.clock)
    )
    if run.serve_admin:
        keys = Keys(run.settings.api.keys, run.settings.api.read_only_keys)
        app = webhooks_http.create_app(store, queue, service.metrics, run.clock, keys)
        config = run.settings.webhooks
        await stack.enter_async_context(serving(app, config.http_host, config.http_port))

    async def delivered() -> int:
        await queue.drain()
        dead = await store.dead()
        for d in dead:
            run.notices.write(f"callbridge: error: {d.event_type} {d.chain} not delivered: {d.reason}\n")
        return 1 if dead else 0

    return delivered


async def _nothing_failed() -> int:
    return 0


def _printer(out: TextIO) -> Callable[[Message], Awaitable[None]]:
    async def write(event: Message) -> None:
        payload = classic_webhook(event)
        if payload is not None:
            out.write(json.dumps(payload) + "\n")
            out.flush()

    return write
