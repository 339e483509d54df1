"""Each API replica's own copy of the PBX state, fed by the bus.

It starts from the monitor's snapshot (RPC) and applies the monitor's later events in sequence.
Events that arrive while a snapshot is on its way wait, and those the snapshot already holds are
skipped. A gap in the sequence, or a new monitor run (another `source`), asks for a fresh
snapshot; once it has moved on to a new run, the late events of the runs before it (a monitor's
outbox sent after a restart, a copy sent again) are ignored. Until the first snapshot arrives the
cache is not ready, and the API answers 503.
"""

import asyncio
import logging
from collections.abc import Callable

from shared.bus import Bus, RpcUnavailable
from shared.commands import SNAPSHOT
from shared.event_base import Event
from shared.pbx_state import STATE_EVENTS, PbxState, StateSnapshot

logger = logging.getLogger(__name__)

RETRY_FIRST, RETRY_MAX = 0.5, 15.0  # seconds between snapshot attempts while the monitor is away
# The API and the monitor often start together (the demo, compose, the units): a monitor that
# answers within this many seconds is no news; one that stays silent longer is worth a warning.
QUIET_START = 10.0
PENDING_LIMIT = 100_000  # events kept while a snapshot is on its way


class StateCache:
    def __init__(self, bus: Bus, answer_within: float, *, quiet_start: float = QUIET_START) -> None:
        self.state = PbxState()
        self.source = ""
        self.seq = 0
        self.snapshots = 0  # how many snapshots were loaded (the first, then one per gap or restart)
        self._bus = bus
        self._answer_within = answer_within
        self._quiet_start = quiet_start
        self._pending: list[Event] = []
        self._retired: set[str] = set()  # monitor runs this cache has moved on from
        self._syncing: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()
        self._changed = asyncio.Condition()

    @property
    def version(self) -> tuple[int, int]:
        """Changes whenever the state may have: a new snapshot, or a further event."""
        return self.snapshots, self.seq

    @property
    def ready(self) -> bool:
        return self._loaded.is_set()

    async def wait_ready(self) -> None:
        await self._loaded.wait()

    def start(self) -> None:
        """Ask for the first snapshot (again and again until the monitor answers)."""
        self._resync()

    async def close(self) -> None:
        if self._syncing is not None:
            self._syncing.cancel()
            await asyncio.gather(self._syncing, return_exceptions=True)

    async def handle(self, event: Event) -> None:
        """The bus handler: fold a state event in, or notice that one is missing. Every event of
        the followed monitor counts in its sequence, call events included."""
        if event.source in self._retired:
            return
        if self._syncing is not None:
            if len(self._pending) < PENDING_LIMIT:
                self._pending.append(event)  # kept whatever its source: the snapshot will tell
            return
        if event.source != self.source and event.type not in STATE_EVENTS:
            return  # another service's event (recordings, webhooks)
        if not self._follow(event):
            self._pending.append(event)
            self._resync()
        await self._notify()

    def _follow(self, event: Event) -> bool:
        """Apply `event` if it is the next one; True unless the sequence broke."""
        if event.source == self.source and event.seq <= self.seq:
            return True  # the snapshot holds it already
        if event.source != self.source or event.seq != self.seq + 1:
            logger.warning(
                "state cache: event %s #%d after %s #%d: asking for a fresh snapshot",
                event.source,
                event.seq,
                self.source or "nothing",
                self.seq,
            )
            return False
        self.state.apply(event)
        self.seq = event.seq
        return True

    def _resync(self) -> None:
        if self._syncing is None:
            self._syncing = asyncio.create_task(self._load(), name="api state snapshot")

    async def _load(self) -> None:
        delay = RETRY_FIRST
        loop = asyncio.get_running_loop()
        since = loop.time()
        try:
            while True:
                try:
                    answer = await self._bus.call(SNAPSHOT, {}, self._answer_within)
                    snapshot = StateSnapshot.model_validate(answer)
                except RpcUnavailable as error:
                    silent = loop.time() - since
                    logger.log(
                        logging.WARNING if silent >= self._quiet_start else logging.INFO,
                        "state cache: no snapshot from the monitor for %.0f s (%s); retrying in %gs",
                        silent,
                        error,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
                    continue
                self._install(snapshot)
                break
        finally:
            self._syncing = None
        await self._notify()

    def _install(self, snapshot: StateSnapshot) -> None:
        """Take the snapshot and the events that came after it. The snapshot was asked for after
        the events that showed a gap arrived, so it holds them; an event that still does not
        follow it cannot be placed and is dropped (the next event shows whether more is missing)."""
        self.state = PbxState.from_snapshot(snapshot)
        if self.source and self.source != snapshot.source:
            self._retired.add(self.source)
        self.source, self.seq = snapshot.source, snapshot.seq
        self.snapshots += 1
        pending, self._pending = self._pending, []
        for event in sorted(pending, key=lambda e: e.seq):
            if event.source == self.source and not self._follow(event):
                logger.warning(
                    "state cache: event %s #%d dropped: it does not follow", event.source, event.seq
                )
        logger.info("state cache: snapshot of %s at #%d loaded", self.source, self.seq)
        self._loaded.set()

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, condition: Callable[["StateCache"], bool]) -> None:
        """Return once `condition(self)` holds with no snapshot on its way (tests, benchmarks)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._syncing is None and condition(self))

    async def wait_for(self, seq: int, source: str | None = None) -> None:
        """Return once the cache holds the monitor's event `seq`."""
        await self.wait_until(lambda cache: cache.seq >= seq and source in (None, cache.source))
