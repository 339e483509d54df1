"""The monitor's loop: the driver's updates a burst at a time through the tracker; what a burst
makes goes into the outbox together with the calls it changed (one transaction), and the calls'
states follow as `Pacing` says (`[monitor] states_every`)."""

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from shared.event_base import Event
from shared.events import CallsChanged
from shared.pbx_state import PbxState

from .bursts import bursts
from .metrics import MonitorMetrics
from .outbox import Changes, Outbox
from .pacing import Pacing
from .tracker import CallTracker
from .updates import PbxUpdate

logger = logging.getLogger(__name__)
KEEP_RETRY_FIRST, KEEP_RETRY_MAX = 1.0, 30.0  # seconds between tries to keep events on a full disk


@dataclass
class Following:
    tracker: CallTracker
    state: PbxState  # the directory and the extensions as the events made so far say them
    outbox: Outbox
    figures: MonitorMetrics
    states_every: float

    async def follow(self, updates: AsyncIterator[PbxUpdate]) -> None:
        """Until `updates` end; then the states still waiting go out too."""
        pacing = Pacing(self.states_every)
        async for burst in bursts(updates, patience=pacing.patience):
            made = self.tracker.apply_burst(burst)
            if pacing.due(self.tracker.states_waiting):
                made += self.tracker.publish_states()
            await self._kept(made)
            self.figures.updates.inc(len(burst))
        await self._kept(self.tracker.publish_states())

    async def _kept(self, made: list[Event]) -> None:
        for event in made:  # the state is complete up to tracker.seq before anything is sent
            if not isinstance(event, CallsChanged):  # the calls and presence: `tracker.current()`
                self.state.apply(event)
        self.figures.seq.set(self.tracker.seq)
        self.figures.calls.set(self.tracker.in_progress)
        saved, gone = self.tracker.changes()
        if made or saved or gone:
            await keep(self.outbox, made, Changes(self.tracker.source, self.tracker.seq, saved, gone))
        for event in made:
            self.figures.events.labels(event.type).inc()


async def keep(outbox: Outbox, events: list[Event], changes: Changes) -> None:
    """Put `events` in the outbox; while it cannot take them (a full disk), wait and try again:
    the PBX's updates wait meanwhile, and readiness says so."""
    delay = KEEP_RETRY_FIRST
    while True:
        try:
            outbox.append(events, changes)
            return
        except OSError as error:
            logger.error("%s; trying again in %g s", error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, KEEP_RETRY_MAX)
