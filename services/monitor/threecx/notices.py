"""The Call Control socket's notices, handled in the order they came, while the participants they
name are fetched several at a time.

After each upsert notice the driver GETs the participant (docs/3cx.md §1.5). One GET after the
other, a PBX 5 ms away would be read at 200 notices a second at most (~20 new calls a second),
whatever the host's speed. So each upsert's GET starts as its notice is read, up to IN_FLIGHT
notices in hand (the socket is read no further meanwhile), one after the other for the same
participant; what they found is handed on in the notices' order, and a GET that fails fails the
socket's turn as before (the driver opens the socket again and takes a snapshot).
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

IN_FLIGHT = 32

Key = tuple[str, int]  # (DN, participant number)


@dataclass(slots=True)
class _Notice:
    key: Key
    fetched: "asyncio.Task[Any] | None"  # an upsert's GET; None: a removal


class Notices:
    def __init__(self, fetch: Callable[[str, int], Awaitable[Any]], window: int = IN_FLIGHT) -> None:
        """`fetch(dn, number)`: the participant as the PBX shows it now (None: gone)."""
        self._fetch = fetch
        self._queue: asyncio.Queue[_Notice | None] = asyncio.Queue(window)
        self._latest: dict[Key, asyncio.Task[Any]] = {}  # each participant's last GET

    async def put(self, dn: str, number: int, *, removed: bool) -> None:
        """A notice, queued behind those in hand (waiting while the window is full); an upsert's GET
        starts now, after the one before it of the same participant."""
        key = (dn, number)
        fetched = None
        if not removed:
            fetched = self._latest[key] = asyncio.create_task(self._after(self._latest.get(key), key))
        await self._queue.put(_Notice(key, fetched))

    async def end(self) -> None:
        """No more notices: `handle` returns after the last one."""
        await self._queue.put(None)

    async def handle(
        self,
        upsert: Callable[[str, Any], object],
        remove: Callable[[str, int], object],
        finished: Callable[[bool], None],
    ) -> None:
        """Each notice in turn: `upsert(dn, participant)`, or `remove(dn, number)` for a removal or
        a participant gone before it was fetched; then `finished(handled)`. Raises a GET's error."""
        while (notice := await self._queue.get()) is not None:
            handled = False
            try:
                dn, number = notice.key
                found = None
                if notice.fetched is not None:
                    found = await notice.fetched
                    if self._latest.get(notice.key) is notice.fetched:
                        del self._latest[notice.key]
                if found is None:
                    remove(dn, number)
                else:
                    upsert(dn, found)
                handled = True
            finally:
                finished(handled)

    def close(self) -> int:
        """Cancel the GETs in hand; how many queued notices go unhandled."""
        dropped = 0
        while not self._queue.empty():
            notice = self._queue.get_nowait()
            if notice is not None:
                dropped += 1
                if notice.fetched is not None:
                    _drop(notice.fetched)
        for task in self._latest.values():
            _drop(task)
        self._latest.clear()
        return dropped

    async def _after(self, before: "asyncio.Task[Any] | None", key: Key) -> Any:
        if before is not None:
            await asyncio.wait([before])  # its outcome is its own notice's to handle
        return await self._fetch(*key)


def _drop(task: "asyncio.Task[Any]") -> None:
    if task.done():
        if not task.cancelled():
            task.exception()  # seen: the socket's turn is over anyway
    else:
        task.cancel()
