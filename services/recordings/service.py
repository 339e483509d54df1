"""The recordings service's work: find finished PBX recordings, convert them, announce them.

- `scan()` walks the PBX folder. A WAV counts as finished once its size and modification time
  were the same at two scans and it is `settle` seconds old (3CX writes while the call runs and
  may close the file up to a minute after the hangup). A finished file is matched to its link
  (ledger.py), converted in a worker process (transcode.py) into the archive, and, with
  `keep_wav = false`, deleted once the conversion was verified.
- A corrupt, empty or unreadable WAV is logged and reported as a `recording.failed` event, and
  never tried again.
- `announce()` publishes `recording.ready` for every link of every chain the ledger finds ready,
  with signed, expiring download links.
"""

import asyncio
import logging
import time
from concurrent.futures import Executor
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.bus import Bus
from shared.clock import Clock
from shared.events import CallEnded, Message, RecordingFailed, RecordingReady
from shared.settings import RecordingsSettings
from shared.stamps import Stamper

from .ledger import Match, RecordingLedger
from .naming import PbxRecording, archive_path, parse_pbx_name
from .tokens import download_url
from .transcode import Converted, CorruptRecording, transcode

logger = logging.getLogger(__name__)

UNMATCHED_AFTER = timedelta(days=1)  # a file no call claimed for this long is left alone


def day_of(chain_id: str) -> date:
    """The PBX-local day a chain began, from its id (`YYMMDDhhmmss_N`): its archive folder."""
    return datetime.strptime(chain_id[:6], "%y%m%d").date()


class Recordings:
    def __init__(
        self,
        settings: RecordingsSettings,
        bus: Bus | None,
        clock: Clock,
        executor: Executor,
        *,
        zone: ZoneInfo,
        secret: bytes,
    ) -> None:
        self.settings = settings
        self.ledger = RecordingLedger(zone)
        self._bus_or_none = bus
        self._clock = clock
        self._executor = executor
        self._secret = secret
        self._stamp = Stamper("recordings")
        self._seen: dict[Path, tuple[int, float]] = {}
        self._done: set[Path] = set()
        self._converting: set[asyncio.Task[None]] = set()
        self.converted = 0
        self.failed = 0

    def attach(self, bus: Bus) -> None:
        """Publish on `bus` (when it was not known at construction)."""
        self._bus_or_none = bus

    @property
    def _bus(self) -> Bus:
        if self._bus_or_none is None:
            raise RuntimeError("Recordings has no bus to publish on: attach() one")
        return self._bus_or_none

    async def on_event(self, event: Message) -> None:
        self.ledger.apply(event, self._clock.now())
        if isinstance(event, CallEnded) and event.chain_ended:
            await self.announce()

    async def scan(self) -> int:
        """Start converting every finished, matched recording; returns how many were started."""
        started = 0
        now = self._clock.now()
        for path in sorted(self.settings.pbx_dir.rglob("*.wav")):
            if path in self._done or not self._finished(path):
                continue
            recording = parse_pbx_name(path, self.settings.pbx_dir)
            if recording is None:
                self._done.add(path)
                logger.debug("recording %s: not a PBX recording name; ignored", path)
                continue
            match = self.ledger.match(recording, now)
            if match is None:
                if time.time() - path.stat().st_mtime > UNMATCHED_AFTER.total_seconds():
                    logger.warning("recording %s matches no call it knows; left alone", path)
                    self._done.add(path)
                continue
            self._done.add(path)
            self._seen.pop(path, None)
            task = asyncio.create_task(self._convert(recording, match))
            self._converting.add(task)
            task.add_done_callback(self._converting.discard)
            started += 1
        return started

    def _finished(self, path: Path) -> bool:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return False
        key = (stat.st_size, stat.st_mtime)
        previous, self._seen[path] = self._seen.get(path), key
        if self.settings.settle == 0:
            return True
        return previous == key and time.time() - stat.st_mtime >= self.settings.settle

    async def _convert(self, recording: PbxRecording, match: Match) -> None:
        target = archive_path(self.settings.archive_dir, day_of(match.chain_id), match.name)
        loop = asyncio.get_running_loop()
        try:
            result: Converted = await loop.run_in_executor(
                self._executor,
                transcode,
                recording.path,
                target,
                self.settings.bitrate,
                self.settings.quality,
            )
        except CorruptRecording as error:
            self.failed += 1
            self.ledger.settled(match.chain_id, match.link, recording.path, converted=False)
            logger.error("recording %s skipped: %s", recording.path, error)
            await self._bus.publish(
                RecordingFailed(
                    occurred_at=self._clock.now(),
                    path=str(recording.path),
                    reason=str(error),
                    **self._stamp.next(),
                )
            )
            return
        self.converted += 1
        self.ledger.settled(match.chain_id, match.link, recording.path, converted=True)
        logger.info("recording %s → %s (%.0f s of audio)", recording.path, target, result.seconds)
        if not self.settings.keep_wav:
            recording.path.unlink(missing_ok=True)

    async def drain(self) -> None:
        """Wait for the conversions under way."""
        while self._converting:
            await asyncio.gather(*set(self._converting))

    async def announce(self) -> int:
        now = self._clock.now()
        due = self.ledger.due(
            now, timedelta(seconds=self.settings.quiet), timedelta(seconds=self.settings.max_wait)
        )
        expires = int(now.timestamp() + self.settings.token_ttl)
        for item in due:
            files = tuple(
                download_url(self.settings.public_url, self._secret, name, expires) for name in item.names
            )
            ended = item.ended
            await self._bus.publish(
                RecordingReady(
                    occurred_at=now,
                    chain_id=ended.chain_id,
                    call_number=ended.call_number,
                    direction=ended.direction,
                    external_number=ended.external_number,
                    did_name=ended.did_name,
                    did_number=ended.did_number,
                    link=item.link,
                    files=files,
                    ended=ended,
                    **self._stamp.next(),
                )
            )
        if due:
            await self._bus.flush()
        return len(due)

    async def run(self) -> None:
        """Scan and announce every `scan_interval` seconds, for ever."""
        while True:
            await self.scan()
            await self.announce()
            await self._clock.sleep_until(self._clock.now() + timedelta(seconds=self.settings.scan_interval))
