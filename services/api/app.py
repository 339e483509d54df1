"""The classic REST methods, the live event stream, health and metrics, as one FastAPI app.

Every method is `GET /{method}?key=…&…` (or the classic `/webapi/{key}/{method}` path) and
answers JSON. Reads come from the replica's state cache; commands go to the monitor over RPC and
answer `{"result": "success"}` or `{"result": "failure", "reason": …}` with a 4xx status.
Errors are `{"error": …}`: 401 missing or wrong key, 403 a read-only key sending a command, 404
an unknown extension, queue or group, 422 a malformed parameter, 503 when the state is not loaded
yet or the monitor does not answer.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import commands
from shared.bus import Bus, RpcUnavailable
from shared.events import FORWARDING_PROFILES, Extension, ForwardingProfile
from shared.http_server import health_routes, metrics_response
from shared.pbx_state import PbxState
from shared.settings import ApiSettings

from . import answers
from .auth import Access, Keys, bearer
from .cache import StateCache
from .metrics import ApiMetrics, Measured
from .stream import EventStream

Number = Annotated[str, Query(min_length=1, max_length=32, description="the DN's number")]
OnOff = Literal["on", "off"]
LogIn = Annotated[OnOff, Query(description="on: log in, off: log out")]
FAILURE_STATUS = {"not_found": 404, "invalid": 400, "refused": 409}
READ_TAGS = {"calls", "directory", "extensions", "queues and groups"}  # answers that only read the state


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "the request makes no sense for the PBX (the reason says why)",
        401: "missing or wrong API key",
        403: "a read-only key cannot send commands",
        404: "no such extension, queue or ring group",
        409: "the PBX refused the command",
        422: "a parameter is missing or malformed",
        503: "the state is not loaded yet, or the monitor did not answer",
    }
    return {code: {"model": answers.ErrorAnswer, "description": described[code]} for code in codes}


READ_ERRORS = _errors(401, 422, 503)
LOOKUP_ERRORS = _errors(401, 404, 422, 503)
COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    **_errors(401, 403, 422, 503),
    **{
        code: {"model": answers.CommandAnswer, "description": f"the command failed ({what})"}
        for code, what in ((400, "a bad request"), (404, "an unknown name"), (409, "the PBX refused"))
    },
}


def create_app(
    cache: StateCache,
    stream: EventStream,
    bus: Bus,
    settings: ApiSettings,
    metrics: ApiMetrics,
    connected: Callable[[], bool] = lambda: True,
) -> FastAPI:
    app = FastAPI(
        title="callbridge API",
        version="1",
        description=__doc__,
        openapi_tags=[
            {"name": "calls", "description": "calls in progress"},
            {"name": "directory", "description": "extensions, ring groups, queues, IVRs and lines"},
            {"name": "extensions", "description": "one extension's details and state"},
            {"name": "queues and groups", "description": "who can take a call"},
            {"name": "commands", "description": "change the PBX (keys with command rights only)"},
            {"name": "events", "description": "the live event stream"},
            {"name": "operations", "description": "health and metrics (no key)"},
        ],
    )
    keys = Keys(settings.keys, settings.read_only_keys)
    active = answers.RenderedCalls(answers.active_call, "AConnByCallID")
    info = answers.RenderedCalls(answers.call_info, "callsInfo")
    read = [Depends(keys.dependency(Access.READ))]
    command = [Depends(keys.dependency(Access.COMMAND))]

    async def state() -> PbxState:
        if not cache.ready:
            raise HTTPException(503, "the PBX state is not loaded yet: the monitor has not answered")
        return cache.state

    State = Annotated[PbxState, Depends(state)]

    def extension_of(pbx: PbxState, number: str) -> Extension:
        extension = pbx.extensions.get(number)
        if extension is None:
            raise HTTPException(404, f"extension {number} does not exist")
        return extension

    async def send(command: commands.Command) -> Any:
        try:
            answer = await bus.call(commands.COMMAND, command.model_dump(), settings.command_timeout)
        except RpcUnavailable as error:
            raise HTTPException(503, f"the monitor did not carry out the command: {error}") from None
        result = commands.CommandResult.model_validate(answer)
        if result.ok:
            return answers.CommandAnswer(result="success", callID=result.call_number)
        failed = answers.CommandAnswer(result="failure", reason=result.reason)
        return JSONResponse(failed.model_dump(), status_code=FAILURE_STATUS[result.failure or "refused"])

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(
            {"error": str(error.detail)}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'][1:]) or 'request'}: {e['msg']}" for e in error.errors()
        )
        return JSONResponse({"error": problems}, status_code=422)

    # --- calls ---------------------------------------------------------------------------------

    @app.get("/pbx.calls.get", tags=["calls"], dependencies=read, responses=READ_ERRORS)
    async def calls_count(pbx: State) -> answers.CountAnswer:
        """The number of calls in progress (internal ones included)."""
        return answers.CountAnswer(result=len(pbx.calls))

    @app.get(
        "/pbx.ac.get",
        tags=["calls"],
        dependencies=read,
        responses=READ_ERRORS,
        response_model=answers.ActiveCallsAnswer,
    )
    async def active_calls(pbx: State) -> Response:
        """Calls in progress with their legs (a leg: whose it is, to whom, and its status).

        `direction`: `Inbound` an outside caller reaching an extension, `FromExternal` one not at
        an extension yet (IVR, queue), `Outbound` an extension dialling out, `Internal` extension
        to extension, `FromInternal` a click-to-dial still ringing its own extension, `External`
        outside to outside."""
        return Response(active.json(pbx), media_type="application/json")

    @app.get(
        "/pbx.callsinfo.get",
        tags=["calls"],
        dependencies=read,
        responses=READ_ERRORS,
        response_model=answers.CallsInfoAnswer,
    )
    async def calls_info(pbx: State) -> Response:
        """Calls in progress: state, times and parties.

        `state`: `Initiating` dialling, `Routing` ringing or waiting unanswered, `Rerouting`
        unanswered and moved on from its first destination, `Transferring` blind-transferred and
        ringing its new destination, `Talking`, `Unknown` otherwise."""
        return Response(info.json(pbx), media_type="application/json")

    # --- directory -----------------------------------------------------------------------------

    @app.get("/all.ext.get", tags=["directory"], dependencies=read, responses=READ_ERRORS)
    async def all_extensions(pbx: State) -> answers.ExtensionsAnswer:
        """Every extension."""
        listed = [answers.Entry(num=e.number, name=e.name) for e in pbx.extensions.values()]
        return answers.ExtensionsAnswer(count=len(listed), extensions=listed)

    @app.get("/all.registered.get", tags=["directory"], dependencies=read, responses=READ_ERRORS)
    async def registered_extensions(pbx: State) -> answers.ExtensionsAnswer:
        """The extensions whose phone is registered."""
        listed = [answers.Entry(num=e.number, name=e.name) for e in pbx.extensions.values() if e.registered]
        return answers.ExtensionsAnswer(count=len(listed), extensions=listed)

    @app.get("/all.group.get", tags=["directory"], dependencies=read, responses=READ_ERRORS)
    async def all_groups(pbx: State) -> answers.GroupsAnswer:
        """Every ring group and its members."""
        listed = [answers.Group(num=g.number, name=g.name, members=list(g.members)) for g in pbx.groups]
        return answers.GroupsAnswer(count=len(listed), groups=listed)

    @app.get("/all.queue.get", tags=["directory"], dependencies=read, responses=READ_ERRORS)
    async def all_queues(pbx: State) -> answers.QueuesAnswer:
        """Every queue and its agents."""
        listed = [answers.Queue(num=q.number, name=q.name, agents=list(q.agents)) for q in pbx.queues]
        return answers.QueuesAnswer(count=len(listed), queues=listed)

    @app.get("/all.ivr.get", tags=["directory"], dependencies=read, responses=READ_ERRORS)
    async def all_ivrs(pbx: State) -> answers.IvrsAnswer:
        """Every IVR (digital receptionist)."""
        listed = [answers.Entry(num=i.number, name=i.name) for i in pbx.ivrs]
        return answers.IvrsAnswer(count=len(listed), ivrs=listed)

    @app.get("/all.line.get", tags=["directory"], dependencies=read, responses=READ_ERRORS)
    async def all_lines(pbx: State) -> answers.LinesAnswer:
        """Every line (trunk) and its DID rules."""
        listed = [
            answers.Line(
                num=line.number,
                name=line.name,
                dids=[answers.Did(number=d.number, name=d.name) for d in line.dids],
            )
            for line in pbx.lines
        ]
        return answers.LinesAnswer(count=len(listed), lines=listed)

    # --- one extension ---------------------------------------------------------------------------

    @app.get("/ext.info.get", tags=["extensions"], dependencies=read, responses=LOOKUP_ERRORS)
    async def extension_info(pbx: State, num: Number) -> answers.ExtensionInfo:
        """An extension's settings and memberships."""
        return answers.extension_info(pbx, extension_of(pbx, num))

    @app.get("/ext.state.get", tags=["extensions"], dependencies=read, responses=LOOKUP_ERRORS)
    async def extension_state(pbx: State, num: Number) -> answers.ExtensionState:
        """An extension's registration, presence, forwarding profile and queue status."""
        return answers.extension_state(pbx, extension_of(pbx, num))

    # --- queues and ring groups ------------------------------------------------------------------

    def queue_members(pbx: PbxState, num: str) -> answers.MembersAnswer:
        queue = next((q for q in pbx.queues if q.number == num), None)
        if queue is None:
            raise HTTPException(404, f"queue {num} does not exist")
        return answers.members(pbx, num, queue.agents, queue=True)

    def group_members(pbx: PbxState, num: str) -> answers.MembersAnswer:
        group = next((g for g in pbx.groups if g.number == num), None)
        if group is None:
            raise HTTPException(404, f"ring group {num} does not exist")
        return answers.members(pbx, num, group.members, queue=False)

    def only(listed: answers.MembersAnswer, keep: Callable[[answers.Member], bool]) -> answers.MembersAnswer:
        kept = [m for m in listed.members if keep(m)]
        return answers.MembersAnswer(num=listed.num, count=len(kept), members=kept)

    @app.get("/queue.members.get", tags=["queues and groups"], dependencies=read, responses=LOOKUP_ERRORS)
    async def queue_all(pbx: State, num: Number) -> answers.MembersAnswer:
        """A queue's agents, with registration, presence and login status."""
        return queue_members(pbx, num)

    @app.get("/queue.free.get", tags=["queues and groups"], dependencies=read, responses=LOOKUP_ERRORS)
    async def queue_free(pbx: State, num: Number) -> answers.MembersAnswer:
        """A queue's agents who could take a call now: registered, logged in and free."""
        return only(queue_members(pbx, num), answers.can_take_a_call)

    @app.get("/queue.talk.get", tags=["queues and groups"], dependencies=read, responses=LOOKUP_ERRORS)
    async def queue_talking(pbx: State, num: Number) -> answers.MembersAnswer:
        """A queue's agents who are on a call."""
        return only(queue_members(pbx, num), lambda m: m.status == "Busy")

    @app.get("/queue.isfree.get", tags=["queues and groups"], dependencies=read, responses=LOOKUP_ERRORS)
    async def queue_is_free(pbx: State, num: Number) -> answers.IsFreeAnswer:
        """Whether at least one of a queue's agents could take a call now."""
        return answers.IsFreeAnswer(
            num=num, free=any(map(answers.can_take_a_call, queue_members(pbx, num).members))
        )

    @app.get("/group.members.get", tags=["queues and groups"], dependencies=read, responses=LOOKUP_ERRORS)
    async def group_all(pbx: State, num: Number) -> answers.MembersAnswer:
        """A ring group's members, with registration and presence."""
        return group_members(pbx, num)

    @app.get("/group.free.get", tags=["queues and groups"], dependencies=read, responses=LOOKUP_ERRORS)
    async def group_free(pbx: State, num: Number) -> answers.MembersAnswer:
        """A ring group's members who could take a call now: registered and free."""
        return only(group_members(pbx, num), answers.can_take_a_call)

    # --- commands ----------------------------------------------------------------------------------

    @app.get("/makecall", tags=["commands"], dependencies=command, responses=COMMAND_ERRORS)
    async def makecall(
        first: Annotated[
            str, Query(min_length=1, max_length=32, description="the extension that rings first")
        ],
        second: Annotated[
            str,
            Query(min_length=1, max_length=32, description="then dialled: an extension or outside number"),
        ],
    ) -> answers.CommandAnswer:
        """Click to dial: `first`'s phone rings; once it is picked up, the PBX dials `second`."""
        return await send(commands.MakeCall(first=first, second=second))  # type: ignore[no-any-return]

    @app.get("/ext.fwd.set", tags=["commands"], dependencies=command, responses=COMMAND_ERRORS)
    async def set_forwarding(
        num: Number,
        status: Annotated[
            str,
            Query(
                max_length=32, description="the profile: " + ", ".join(FORWARDING_PROFILES) + " (any case)"
            ),
        ],
    ) -> answers.CommandAnswer:
        """Switch an extension's forwarding profile."""
        profile = _profile(status)
        if profile is None:
            return JSONResponse(  # type: ignore[return-value]
                answers.CommandAnswer(
                    result="failure",
                    reason=f"unknown status {status!r}: one of {', '.join(FORWARDING_PROFILES)}",
                ).model_dump(),
                status_code=400,
            )
        return await send(commands.SetForwarding(extension=num, profile=profile))  # type: ignore[no-any-return]

    @app.get("/ext.queueglobal.set", tags=["commands"], dependencies=command, responses=COMMAND_ERRORS)
    async def set_queue_global(num: Number, log: LogIn) -> answers.CommandAnswer:
        """Log an agent in to (`on`) or out of (`off`) all its queues at once."""
        request = commands.SetQueueLogin(extension=num, queue="all", logged_in=log == "on")
        return await send(request)  # type: ignore[no-any-return]

    @app.get("/ext.queue.set", tags=["commands"], dependencies=command, responses=COMMAND_ERRORS)
    async def set_queue(
        num: Number,
        queue: Annotated[str, Query(min_length=1, max_length=32, description="the queue's number")],
        log: LogIn,
    ) -> answers.CommandAnswer:
        """Log an agent in to (`on`) or out of (`off`) one queue."""
        if queue == "all":
            raise HTTPException(422, "queue: use ext.queueglobal.set for all queues")
        request = commands.SetQueueLogin(extension=num, queue=queue, logged_in=log == "on")
        return await send(request)  # type: ignore[no-any-return]

    @app.get("/ext.options.set", tags=["commands"], dependencies=command, responses=COMMAND_ERRORS)
    async def set_options(
        num: Number,
        enabled: Annotated[OnOff | None, Query(description="the extension may be used at all")] = None,
        external: Annotated[OnOff | None, Query(description="it may make and take outside calls")] = None,
        recording: Annotated[
            Literal["off", "external", "all"] | None, Query(description="which calls are recorded")
        ] = None,
    ) -> answers.CommandAnswer:
        """Change one to three of an extension's options; the ones not given stay as they are."""
        if enabled is None and external is None and recording is None:
            raise HTTPException(422, "give at least one of enabled, external, recording")
        request = commands.SetOptions(
            extension=num,
            enabled=None if enabled is None else enabled == "on",
            external=None if external is None else external == "on",
            recording=recording,
        )
        return await send(request)  # type: ignore[no-any-return]

    # --- the live stream -------------------------------------------------------------------------

    @app.get(
        "/events",
        tags=["events"],
        dependencies=read,
        responses=READ_ERRORS,
        response_class=EventSourceResponse,
    )
    async def events(
        types: Annotated[
            str,
            Query(
                max_length=500,
                description="comma-separated event types or topic patterns (`call.*`, `extension.#`); "
                "all by default",
            ),
        ] = "#",
    ) -> AsyncIterator[ServerSentEvent]:
        """Server-Sent Events: each bus event as it happens (`event:` its type, `id:` its
        event_id, `data:` the event's JSON). A client that falls too far behind is sent an
        `overflow` event and cut off; reconnect to go on."""
        patterns = [p.strip() for p in types.split(",") if p.strip()] or ["#"]
        async with stream.listen(patterns) as listener:
            yield ServerSentEvent(comment="callbridge events")
            while True:
                item = await listener.inbox.get()
                if item is None:
                    yield ServerSentEvent(event="overflow", data={"error": "this client fell too far behind"})
                    return
                event, body = item
                yield ServerSentEvent(raw_data=body, event=event.type, id=str(event.event_id))

    # --- operations --------------------------------------------------------------------------------

    app.include_router(health_routes(lambda: connected() and cache.ready), tags=["operations"])

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
    async def prometheus() -> PlainTextResponse:
        """Prometheus metrics: requests and their latency per method, cache and stream figures."""
        metrics.listeners.set(stream.listeners)
        metrics.cache_seq.set(cache.seq)
        metrics.snapshots.set(cache.snapshots)
        return metrics_response(metrics.registry)

    described = app.openapi()["paths"]
    paths = frozenset(described)
    reads = frozenset(p for p, spec in described.items() if set(spec["get"].get("tags", ())) & READ_TAGS)
    app.add_middleware(CachedReads, keys=keys, version=lambda: cache.version, paths=reads)
    app.add_middleware(Measured, metrics=metrics, paths=paths)
    app.add_middleware(ClassicPaths)  # outermost: the rewritten path is the one measured
    return app


CACHED_ANSWERS = 4096  # distinct read requests kept per state version


def _profile(status: str) -> ForwardingProfile | None:
    wanted = status.strip().lower()
    for profile in FORWARDING_PROFILES:
        if profile.lower() == wanted:
            return profile  # type: ignore[return-value]
    return None


ReadRequest = tuple[str, tuple[tuple[str, str], ...]]  # a read method's path and its parameters
Answer = tuple[list[Any], bytes]  # the headers and body of its 200 answer


class CachedReads:
    """ASGI middleware: a read method's 200 answer is kept and sent again, without running the
    method, to any caller with a valid key, until the state changes (`version`). The methods
    themselves, their key check and their errors stay FastAPI's: a miss, an error and a missing
    or wrong key go through to it. With hundreds of calls in progress, `pbx.callsinfo.get` is
    built once per change instead of once per request (docs/benchmarks.md)."""

    def __init__(
        self, app: ASGIApp, keys: Keys, version: Callable[[], tuple[int, int]], paths: frozenset[str]
    ) -> None:
        self._app, self._keys, self._version, self._paths = app, keys, version, paths
        self._answers: dict[ReadRequest, Answer] = {}
        self._building: dict[ReadRequest, asyncio.Future[Answer | None]] = {}
        self._seen: tuple[int, int] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self._paths or scope["method"] != "GET":
            await self._app(scope, receive, send)
            return
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        if not self._authorized(scope, query):
            await self._app(scope, receive, send)  # FastAPI's key check answers
            return
        version = self._version()
        if version != self._seen:
            self._answers.clear()
            self._seen = version
        wanted = (scope["path"], tuple(sorted((k, v) for k, v in query if k != "key")))
        kept = self._answers.get(wanted)
        building = self._building.get(wanted)
        if kept is None and building is not None:  # someone builds this very answer: wait for it
            kept = await asyncio.shield(building)
        if kept is not None:
            headers, body = kept
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        start: dict[str, Any] = {}
        parts: list[bytes] = []

        async def keeping(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))
            await send(message)

        built: asyncio.Future[Answer | None] = asyncio.get_running_loop().create_future()
        self._building[wanted] = built
        answer: Answer | None = None
        try:
            await self._app(scope, receive, keeping)
            if start.get("status") == 200:
                answer = (list(start.get("headers", [])), b"".join(parts))
                if self._version() == version and len(self._answers) < CACHED_ANSWERS:
                    self._answers[wanted] = answer
        finally:
            if self._building.get(wanted) is built:
                del self._building[wanted]
            built.set_result(answer)  # waiters that get None build the answer themselves

    def _authorized(self, scope: Scope, query: list[tuple[str, str]]) -> bool:
        """Any valid key may read (the check itself is `Keys.access`, constant-time)."""
        offered = [v for k, v in query if k == "key"]
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                offered.append(value.decode("latin-1"))
            elif name == b"authorization" and (key := bearer(value.decode("latin-1"))):
                offered.append(key)
        return any([self._keys.access(key) is not None for key in offered])


class ClassicPaths:
    """ASGI middleware: the classic `/webapi/{key}/{method}` path, served as `/{method}` with the
    key as an `X-API-Key` header (integrators can keep their URLs)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/webapi/"):
            parts = scope["path"].split("/", 3)
            if len(parts) == 4 and parts[2] and parts[3]:
                headers = [(k, v) for k, v in scope["headers"] if k != b"x-api-key"]
                scope = {
                    **scope,
                    "path": "/" + parts[3],
                    "raw_path": ("/" + parts[3]).encode(),
                    "headers": [*headers, (b"x-api-key", parts[2].encode())],
                }
        await self._app(scope, receive, send)
