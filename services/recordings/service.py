"""The recordings service's work: find finished PBX recordings, convert them, announce them.

- `scan()` looks for finished WAVs in the PBX folder (watch.py: unchanged at two scans and
  `settle` seconds old, since 3CX writes while the call runs and may close the file up to a
  minute after the hangup). A finished file is matched to its link
  (ledger.py) and handed out as a conversion job (work.py); the `recording.converted` that comes
  back settles it in the ledger.
- A corrupt, empty or unreadable WAV is logged and reported as a `recording.failed` event, and
  never tried again.
- `announce()` publishes `recording.ready` for every link of every chain the ledger finds ready,
  with signed, expiring download links, at least once: the ledger counts a chain announced once
  the broker confirmed its announcements. An announcement's event id is made of its chain, link
  and files, so one sent again (a replica killed after publishing, before marking) is the same
  event, and consumers drop the copy.
- Files older than a day that no call claims are left alone; the day counts from the service's
  last look at the folder, so that a backlog left while it was down is still taken.
"""

import logging
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

from shared.bus import Bus
from shared.chores import Chore
from shared.clock import Clock
from shared.event_base import Event
from shared.events import CallEnded, Message, RecordingConverted, RecordingFailed, RecordingReady, each_event
from shared.settings import RecordingsSettings
from shared.stamps import Stamper
from shared.topology import RECORDINGS_TAKES
from shared.work_queue import WorkQueue

from .ledger import RecordingLedger
from .naming import archive_path, parse_pbx_name
from .tokens import download_url
from .watch import FolderWatch
from .work import ConversionJob

logger = logging.getLogger(__name__)

UNMATCHED_AFTER = timedelta(days=1)  # a file no call claimed for this long is left alone
ANNOUNCEMENTS = UUID("1b5c39c8-5d6e-4f0a-9a53-2f6f4a1d7c01")  # namespace of announcements' event ids


def day_of(chain_id: str) -> date:
    """The PBX-local day a chain began, from its id (`YYMMDDhhmmss_N`): its archive folder."""
    return datetime.strptime(chain_id[:6], "%y%m%d").date()


class Recordings:
    # its settings, its bus, its time, its conversion queue, its ledger, its link secret, and how
    # long the folder went unwatched (what `open` finds out): fewer would hide one in another
    def __init__(  # noqa: PLR0913
        self,
        settings: RecordingsSettings,
        bus: Bus,
        clock: Clock,
        conversions: WorkQueue[ConversionJob],
        *,
        ledger: RecordingLedger,
        secret: bytes,
        down: float,
    ) -> None:
        """`down`: how long no replica looked at the folder (the backlog's age at most)."""
        self.settings = settings
        self.ledger = ledger
        self._bus = bus
        self._clock = clock
        self._conversions = conversions
        self._secret = secret
        self._stamp = Stamper("recordings")
        self._watch = FolderWatch(
            settings.pbx_dir, settle=settings.settle, horizon=UNMATCHED_AFTER.total_seconds() + max(down, 0)
        )
        self.converted = 0
        self.failed = 0
        self.chores: list[Chore] = []  # what runs it as time goes by (main.running)

    @classmethod
    async def open(
        cls,
        settings: RecordingsSettings,
        bus: Bus,
        clock: Clock,
        conversions: WorkQueue[ConversionJob],
        *,
        zone: ZoneInfo,
        secret: bytes,
    ) -> "Recordings":
        """The service on its ledger (`settings.database`); `close()` when done."""
        ledger = await RecordingLedger.open(zone, settings.database)
        wall = time.time()
        down = wall - (await ledger.last_turn() or wall)
        if released := await ledger.release_unqueued():
            logger.warning("%d recording(s) claimed but never handed out (a crash): matched again", released)
        return cls(settings, bus, clock, conversions, ledger=ledger, secret=secret, down=down)

    async def close(self) -> None:
        await self.ledger.close()

    async def on_event(self, message: Message) -> None:
        """The bus handler: the events it takes, of the monitor's batches (`RECORDINGS_TAKES`)."""
        for event in each_event(message):
            if event.type in RECORDINGS_TAKES:
                await self._handle(event)

    async def _handle(self, event: Event) -> None:
        if isinstance(event, RecordingConverted):
            await self._converted(event)
            return
        await self.ledger.apply(event, self._clock.now())
        if isinstance(event, CallEnded) and event.chain_ended:
            await self.announce()

    async def scan(self) -> int:
        """Hand out a conversion job for every finished, matched recording; returns how many."""
        started = 0
        now = self._clock.now()
        for path in self._watch.finished():
            recording = parse_pbx_name(path, self.settings.pbx_dir)
            if recording is None:
                self._watch.settle(path)
                logger.debug("recording %s: not a PBX recording name; ignored", path)
                continue
            match = await self.ledger.match(recording, now)
            if match is None:
                if await self.ledger.claimed(path):  # another replica took it
                    self._watch.settle(path)
                elif self._watch.stale(path):
                    logger.warning("recording %s matches no call it knows; left alone", path)
                    self._watch.settle(path)
                continue
            if not match.finished:  # its call goes on (on hold, the PBX writes nothing): wait
                continue
            target = archive_path(self.settings.archive_dir, day_of(match.chain_id), match.name)
            job = ConversionJob(
                chain_id=match.chain_id,
                link=match.link,
                source=str(path),
                target=str(target),
                bitrate=self.settings.bitrate,
                quality=self.settings.quality,
                keep_wav=self.settings.keep_wav,
            )
            try:
                await self._conversions.submit(job)
                await self._conversions.flush()
            except BaseException:  # not handed out: the file is offered again at the next scan
                await self.ledger.release(path)
                raise
            await self.ledger.queued(path)
            self._watch.settle(path)
            started += 1
        return started

    async def _converted(self, result: RecordingConverted) -> None:
        try:
            await self.ledger.settled(result.chain_id, result.link, Path(result.wav), converted=result.ok)
        except KeyError:
            logger.warning("conversion of %s reported for a chain this replica does not follow", result.wav)
            return
        if result.ok:
            self.converted += 1
        else:
            self.failed += 1
            await self._bus.publish(
                RecordingFailed(
                    occurred_at=self._clock.now(),
                    path=result.wav,
                    reason=result.reason,
                    **self._stamp.next(),
                )
            )
        await self.announce()

    async def drain(self) -> None:
        """Wait for the conversions under way in this process."""
        await self._conversions.drain()

    async def announce(self) -> int:
        now = self._clock.now()
        due = await self.ledger.due(
            now, timedelta(seconds=self.settings.quiet), timedelta(seconds=self.settings.max_wait)
        )
        expires = int(now.timestamp() + self.settings.token_ttl)
        for item in due:
            files = tuple(
                download_url(self.settings.public_url, self._secret, name, expires) for name in item.names
            )
            await self._bus.publish(
                RecordingReady(
                    occurred_at=now,
                    link=item.link,
                    files=files,
                    ended=item.ended,
                    event_id=uuid5(ANNOUNCEMENTS, f"{item.chain_id}/{item.link}/{'/'.join(item.names)}"),
                    **item.ended.chain_fields(),
                    **self._stamp.next(),
                )
            )
        if due:
            await self._bus.flush()  # raises if not confirmed: the lease runs out, they go again
            await self.ledger.announced(due)
        return len(due)

    def healthy(self) -> bool:
        """No chore failed at its last turn."""
        return not any(chore.failing for chore in self.chores)

    async def turn(self) -> None:
        """One look at the folder, then announce what is due (the watch chore's turn)."""
        await self.scan()
        await self.ledger.turned(time.time())
        await self.announce()
