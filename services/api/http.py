"""The API's HTTP edge: the classic REST methods, the live event stream, health and metrics, as
one FastAPI app of a router per topic (`routes/`).

Every method is `GET /{method}?key=…&…` (or the classic `/webapi/{key}/{method}` path) and
answers JSON. Reads come from the replica's state cache; commands go to the monitor over RPC and
answer `{"result": "success"}` or `{"result": "failure", "reason": …}` with a 4xx status.
Errors are `{"error": …}`: 401 missing or wrong key, 403 a read-only key sending a command, 404
an unknown extension, queue or group, 422 a malformed parameter, 503 when the state is not loaded
yet or the monitor does not answer.
"""

from collections.abc import Callable

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shared.bus import Bus
from shared.http_server import health_routes
from shared.keys import Keys
from shared.settings import ApiSettings

from . import answers
from .cache import StateCache
from .deps import Wiring
from .dialling import DialPolicy, RateLimit
from .metrics import ApiMetrics, Measured
from .middleware import CachedReads, ClassicPaths
from .routes import calls, commands, directory, events, extensions, operations, queues
from .stream import EventStream

READ_TAGS = {"calls", "directory", "extensions", "queues and groups"}  # answers that only read the state
TAGS = [
    {"name": "calls", "description": "calls in progress"},
    {"name": "directory", "description": "extensions, ring groups, queues, IVRs and lines"},
    {"name": "extensions", "description": "one extension's details and state"},
    {"name": "queues and groups", "description": "who can take a call"},
    {"name": "commands", "description": "change the PBX (keys with command rights only)"},
    {"name": "events", "description": "the live event stream"},
    {"name": "operations", "description": "health and metrics (no key)"},
]


def create_app(
    cache: StateCache,
    stream: EventStream,
    bus: Bus,
    settings: ApiSettings,
    metrics: ApiMetrics,
    connected: Callable[[], bool] = lambda: True,
) -> FastAPI:
    app = FastAPI(title="callbridge API", version="1", description=__doc__, openapi_tags=TAGS)
    keys = Keys(settings.keys, settings.read_only_keys)
    app.state.keys = keys
    app.state.wiring = Wiring(
        cache,
        stream,
        bus,
        settings,
        metrics,
        keys,
        connected,
        active=answers.RenderedCalls(answers.active_call, "AConnByCallID"),
        info=answers.RenderedCalls(answers.call_info, "callsInfo"),
        dialling=DialPolicy(settings.dial_allow, settings.dial_deny),
        makecalls=RateLimit(settings.makecall_per_minute),
    )
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _invalid)  # type: ignore[arg-type]
    for topic in (calls, directory, extensions, queues, commands, events, operations):
        app.include_router(topic.router)
    app.include_router(health_routes(lambda: connected() and cache.ready), tags=["operations"])
    described = app.openapi()["paths"]
    reads = frozenset(p for p, spec in described.items() if set(spec["get"].get("tags", ())) & READ_TAGS)
    app.add_middleware(CachedReads, keys=keys, version=lambda: cache.version, paths=reads)
    app.add_middleware(Measured, metrics=metrics, paths=frozenset(described))
    app.add_middleware(ClassicPaths)  # outermost: the rewritten path is the one measured
    return app


async def _http_error(request: Request, error: HTTPException) -> JSONResponse:
    return JSONResponse({"error": str(error.detail)}, status_code=error.status_code, headers=error.headers)


async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
    problems = "; ".join(
        f"{'.'.join(str(part) for part in e['loc'][1:]) or 'request'}: {e['msg']}" for e in error.errors()
    )
    return JSONResponse({"error": problems}, status_code=422)
