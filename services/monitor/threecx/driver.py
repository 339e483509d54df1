"""The monitor's driver for a real 3CX v20: Call Control for calls, XAPI for the directory and
the commands (docs/3cx.md §1, §2).

- The WebSocket `/callcontrol/ws` is opened first, then the snapshot `GET /callcontrol` is taken,
  so nothing falls between them; every change notice is handled in order, with a GET of the
  participant it names (a 404 means it is gone), several GETs at a time (`notices.py`). A
  dropped socket is opened again with backoff (1 s doubling to 60 s), followed by a fresh
  snapshot that repairs what the gap hid (a hangup, say); a snapshot is also taken every
  `[pbx] snapshot_interval` seconds.
- What Call Control shows becomes the tracker's updates through `CallAssembler` (the external
  legs it puts together, with their grace period); each update is stamped with its arrival time
  on the driver's clock (3CX sends no times).
- The directory is read from XAPI at start and every `[pbx] directory_refresh` seconds; changed
  registrations, forwarding profiles and queue status become updates too.
- Commands: makecall through Call Control, forwarding profile, queue status (all queues) and
  recording through XAPI; the PBX's refusals come back as command failures with its reason.
"""

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from shared.clock import Clock
from shared.commands import Command, CommandResult
from shared.settings import PbxSettings

from ..updates import EXTENSION, DirectoryUpdate, ParticipantUpdate, PbxUpdate
from .assembler import CallAssembler
from .backlog import Backlog
from .check import connect, session
from .client import PbxClient, PbxError
from .commands import carry_out
from .known import KnownDirectory, lower_keys, state_changes
from .notices import Notices
from .xapi import load_directory

logger = logging.getLogger(__name__)

ENTITY = re.compile(r"^/callcontrol/([^/]+)/participants/(\d+)$")
EVENT_TYPES = {"upsert": 0, "upset": 0, "remove": 1}
FIELDS = frozenset(ParticipantUpdate.__slots__) - {"at", "dn_type", "removed", "reason"}
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 60.0
CALLBACK_WINDOW = timedelta(seconds=5)  # a queue callback counted this near a chain's end is its own


class ThreeCxDriver:
    def __init__(
        self, settings: PbxSettings, clock: Clock, *, grace: float = 2.0, backlog: Path | None = None
    ) -> None:
        """`backlog`: the file where updates the monitor has not taken wait beyond the first
        thousands (`backlog.py`); None: they all wait in memory."""
        self._settings = settings
        self._clock = clock
        self._assembler = CallAssembler(grace=grace)
        self._out = Backlog(backlog)
        self._changed = asyncio.Event()  # the assembler has a new expiry to watch
        self._dn_types: dict[str, str] = {}
        self._known = KnownDirectory()
        self._client: PbxClient | None = None
        self._finishing = False
        self.connected = asyncio.Event()  # the socket is open and the snapshot taken
        self.reconnects = 0
        self.frames_handled = 0  # Call Control notices read off the socket, each one done with
        self._busy = 0  # pieces of work in hand (a notice, a snapshot, an expiry, a command)
        self._heard: list[set[tuple[str, int]]] = []  # per snapshot in flight: who the socket told of
        self._tried = False  # the first connection attempt has succeeded or failed
        self._backing_off = False  # waiting to open the socket again
        self._resumed = False  # calls of a restarted monitor wait for the first snapshot

    def caught_up(self, frames_sent: int) -> bool:
        """Every one of `frames_sent` notices handled and nothing else in hand or still queued: a
        fake PBX's lockstep clock (`shared.clock.LockstepClock`) moves on only then."""
        return (
            self._tried
            and not self._busy
            and (self.connected.is_set() or self._backing_off)
            and self.frames_handled >= frames_sent
            and self._out.empty()
        )

    @contextlib.contextmanager
    def _working(self) -> Iterator[None]:
        self._busy += 1
        try:
            yield
        finally:
            self._busy -= 1

    def ready(self) -> bool:
        return self.connected.is_set()

    def waiting(self) -> tuple[int, int]:
        return self._out.waiting, self._out.on_disk

    def resume(self, participants: list[ParticipantUpdate]) -> None:
        """A restarted monitor's calls: the first snapshot tells which are still there."""
        self._assembler.resume(participants)
        self._resumed = bool(participants)

    def finish(self) -> None:
        """End `updates()` once every open call has ended (a scenario played through a fake PBX)."""
        self._finishing = True
        self._changed.set()

    async def updates(self) -> AsyncIterator[PbxUpdate]:
        async with session(self._settings) as http:
            self._client = connect(self._settings, http)
            await self._load_directory(first=True)
            yield DirectoryUpdate(self._clock.now(), self._known.directory)
            tasks = [
                asyncio.create_task(self._listen(http), name="3cx socket"),
                asyncio.create_task(self._expire(), name="3cx grace"),
                asyncio.create_task(self._every(self._settings.directory_refresh, self._load_directory)),
                asyncio.create_task(self._every(self._settings.snapshot_interval, self._reconcile)),
            ]
            try:
                while True:
                    getting = asyncio.ensure_future(self._out.get())
                    done, _ = await asyncio.wait({getting, *tasks}, return_when=asyncio.FIRST_COMPLETED)
                    if getting in done:
                        yield getting.result()
                        continue
                    getting.cancel()
                    for task in done:
                        task.result()  # a chore failed for good: say why
                    while not self._out.empty():  # finished: what is still queued goes first
                        yield self._out.get_nowait()
                    return
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    # --- Call Control --------------------------------------------------------------------------

    async def _listen(self, http: aiohttp.ClientSession) -> None:
        client = self._client
        assert client is not None
        url = re.sub(r"^http", "ws", client.url) + "/callcontrol/ws"
        backoff = BACKOFF_FIRST
        while True:
            try:
                async with await self._open(http, url) as ws:
                    backoff = BACKOFF_FIRST
                    await self._follow(ws)
            except aiohttp.WSServerHandshakeError as error:
                if error.status == 401:
                    continue  # the token was refused: minted again
                logger.warning("3CX: the Call Control socket was refused (%s)", error.status)
            except (aiohttp.ClientError, PbxError, OSError) as error:
                logger.warning("3CX: Call Control socket lost (%s)", error)
            self.connected.clear()
            self.reconnects += 1
            logger.warning("3CX: reconnecting to the Call Control socket in %g s", backoff)
            self._backing_off = True
            try:
                await self._clock.sleep_until(self._clock.now() + timedelta(seconds=backoff))
            finally:
                self._backing_off = False
            backoff = min(backoff * 2, BACKOFF_MAX)

    async def _open(self, http: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
        """The socket first, then the snapshot, so that nothing falls between them."""
        client = self._client
        assert client is not None
        with self._working():
            try:
                token = await client.tokens.token()
                try:
                    ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {token}"}, heartbeat=5)
                except aiohttp.WSServerHandshakeError as error:
                    if error.status == 401:
                        await client.tokens.refused(token)
                    raise
                try:
                    await self._reconcile()
                except BaseException:
                    await ws.close()
                    raise
                self.connected.set()
                return ws
            finally:
                self._tried = True

    async def _follow(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Read the socket's notices and handle them in order until it closes (`notices.py`)."""
        notices = Notices(self._participant)
        reading = asyncio.create_task(self._read(ws, notices))
        handling = asyncio.create_task(notices.handle(self._upsert, self._remove, self._handled))
        try:
            done, _ = await asyncio.wait({reading, handling}, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # the socket's or a GET's error
        finally:
            for task in (reading, handling):
                task.cancel()
            await asyncio.gather(reading, handling, return_exceptions=True)
            self._busy -= notices.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse, notices: Notices) -> None:
        try:
            async for message in ws:
                if message.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                notice = self._notice(message.data)
                if notice is None:
                    self.frames_handled += 1
                    continue
                dn, number, removed = notice
                self._busy += 1
                try:
                    await notices.put(dn, number, removed=removed)
                except BaseException:
                    self._busy -= 1
                    raise
        finally:  # not caught up again before the wait to reconnect has begun (`caught_up`)
            self.connected.clear()
        await notices.end()

    def _handled(self, handled: bool) -> None:
        self._busy -= 1
        self.frames_handled += handled

    async def _participant(self, dn: str, number: int) -> Any:
        assert self._client is not None
        return await self._client.get(f"/callcontrol/{quote(dn)}/participants/{number}")

    def _notice(self, text: str) -> tuple[str, int, bool] | None:
        """(DN, participant number, removed) of a notice about who is on which call; None for
        any other frame."""
        try:
            frame = lower_keys(json.loads(text))
            event = lower_keys(frame.get("event") or {})
            kind = event.get("event_type")
            kind = EVENT_TYPES.get(str(kind).lower(), kind) if isinstance(kind, str) else kind
            match = ENTITY.match(str(event.get("entity") or ""))
        except (ValueError, AttributeError):
            logger.warning("3CX: a Call Control frame that is not JSON was skipped: %.200s", text)
            return None
        if match is None or kind not in (0, 1):
            return None  # DTMF, prompts, answers to requests: not about who is on which call
        dn, number = match.group(1), int(match.group(2))
        for heard in self._heard:
            heard.add((dn, number))  # the socket's word is newer than any snapshot in flight
        return dn, number, kind == 1

    async def _reconcile(self) -> None:
        """Take the snapshot: unknown participants are upserts, vanished ones removals; but a
        participant the socket told of while the snapshot was on its way is as the socket said
        (the snapshot may be older than that notice)."""
        assert self._client is not None
        heard: set[tuple[str, int]] = set()
        self._heard.append(heard)
        try:
            dns = await self._client.get("/callcontrol") or []
        finally:
            self._heard.remove(heard)
        seen: set[tuple[str, int]] = set(heard)
        for info in dns:
            info = lower_keys(info)
            dn = str(info.get("dn"))
            self._dn_types[dn] = str(info.get("type") or EXTENSION)
            for entity in info.get("participants") or ():
                if (dn, _number(entity)) in heard:
                    continue
                update = self._upsert(dn, entity)
                if update is not None:
                    seen.add((update.dn, update.id))
        for dn, number in set(self._assembler.members()) - seen:
            logger.info("3CX: participant %s/%d vanished while we were not looking", dn, number)
            self._remove(dn, number)
        if self._resumed:
            self._resumed = False
            self._emit(self._assembler.check(self._clock.now()))

    def _upsert(self, dn: str, entity: dict[str, Any]) -> ParticipantUpdate | None:
        fields = {k: v for k, v in lower_keys(entity).items() if k in FIELDS}
        try:
            update = ParticipantUpdate(
                at=self._clock.now(), dn_type=self._dn_types.get(dn, EXTENSION), **(fields | {"dn": dn})
            )
        except TypeError as error:
            logger.warning("3CX: a participant of %s could not be read (%s): %.300s", dn, error, entity)
            return None
        self._emit(self._assembler.apply(update))
        return update

    def _remove(self, dn: str, number: int) -> None:
        member = self._assembler.member(dn, number)
        if member is not None:
            self._emit(self._assembler.apply(replace(member, at=self._clock.now(), removed=True)))

    def _emit(self, updates: list[PbxUpdate]) -> None:
        for update in updates:
            self._out.put(update)
        self._changed.set()

    async def _expire(self) -> None:
        """Remove the external legs of calls that stayed empty through their grace period."""
        while True:
            with self._working():
                for leg in self._assembler.expire(self._clock.now()):
                    if self._assembler.ended_waiting_in_a_queue(leg):
                        leg = replace(leg, reason=await self._callback(leg))
                    self._out.put(leg)
                due = self._assembler.next_expiry()
                if due is None and self._finishing and not self._assembler.members():
                    return
                self._changed.clear()
            waiting: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._changed.wait())]
            if due is not None:
                waiting.append(asyncio.ensure_future(self._clock.sleep_until(due)))
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiting:
                waiter.cancel()

    async def _callback(self, leg: ParticipantUpdate) -> str:
        """Whether the caller who left a queue unanswered ordered a callback: Call Control does
        not say; the queue callback report does (a count per queue and time window)."""
        assert self._client is not None
        window = (leg.at - CALLBACK_WINDOW).isoformat(), (leg.at + CALLBACK_WINDOW).isoformat()
        path = (
            "/xapi/v1/ReportQueueCallbacks/Pbx.GetQueueCallbacksData("
            f"queueDnStr='{quote(leg.party_dn)}',startDt={quote(window[0])},endDt={quote(window[1])})"
        )
        try:
            rows = (await self._client.get(path) or {}).get("value", [])
        except PbxError as error:
            logger.warning("3CX: the queue callback report could not be read (%s)", error)
            return ""
        return "callback" if any((row.get("CallbacksCount") or 0) > 0 for row in rows) else ""

    # --- directory -------------------------------------------------------------------------------

    async def _load_directory(self, first: bool = False) -> None:
        assert self._client is not None
        loaded = await load_directory(self._client)
        directory, before = loaded.directory, self._known.directory
        self._assembler.set_dids({line.number: line.dids[0].number for line in directory.lines if line.dids})
        self._known = KnownDirectory(directory, loaded.user_ids)
        if first:
            return
        self._emit(state_changes(before, directory, self._clock.now()))
        if directory.model_copy(update={"extensions": ()}) != before.model_copy(update={"extensions": ()}):
            self._out.put(DirectoryUpdate(self._clock.now(), directory))

    async def _every(self, seconds: float, chore: Any) -> None:
        while True:
            await self._clock.sleep_until(self._clock.now() + timedelta(seconds=seconds))
            try:
                with self._working():
                    await chore()
            except PbxError as error:
                logger.warning("3CX: %s", error)

    # --- commands ----------------------------------------------------------------------------------

    async def execute(self, command: Command) -> CommandResult:
        with self._working():
            if self._client is None:
                return CommandResult.failed("refused", "not connected to the 3CX yet")
            result, updates = await carry_out(self._client, self._known, command, self._clock.now())
            self._emit(updates)
            return result


def _number(entity: Any) -> int | None:
    """A snapshot participant's id, however 3CX spells the key."""
    try:
        return int(lower_keys(entity).get("id"))
    except (TypeError, ValueError, AttributeError):
        return None
