"""Which recording belongs to which link, and when a chain's recordings can be announced.

The ledger follows the call events: a `call.answered` opens a link's talk time on an extension,
its `call.ended` closes it, the chain's last `call.ended` ends the chain; `pbx.directory` says
which extensions record. A PBX file is matched to the link of its extension whose talk time
contains the file's start (within `SLACK`), preferring the chain whose call number is the
file's `(n)`. A link's files are numbered by start time.

A file is handed out for conversion only once its link has ended (a WAV that stops growing
while a call is on hold is not finished). A chain is announced once it has ended (as this
service saw it), every file matched to it is converted (or failed), no new file came for `quiet`
seconds, and every recording extension's link has a file, or `max_wait` passed since the chain
ended (a recording that never comes does not hold the others back for ever). One announcement
per link with files, at least once: `due()` leases the chain for ANNOUNCE_LEASE, `announced()`
marks it done once the announcements are confirmed published; a lease that ran out (a replica
killed meanwhile, RabbitMQ away) is taken again. A file that comes after its chain was announced
opens the chain again: its link is announced again with every file (the other links' repeats
carry the same event ids, and consumers drop them).

The ledger is kept in SQLite, shared by the recordings replicas of a host, or in PostgreSQL,
shared by replicas on several hosts (`shared.database`): whichever replica is the active consumer
of the call events writes it, a replica that takes over reads it, a file is claimed by exactly
one replica (its path is a primary key), and a chain is announced by exactly one (an update that
only one transaction can win).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.database import Database, open_database
from shared.event_base import Event
from shared.events import CallAnswered, CallEnded, DirectorySnapshot

from .ledger_schema import COLUMNS, SCHEMA
from .naming import PbxRecording, archive_name

SLACK = timedelta(seconds=3)
FORGET_AFTER = timedelta(days=1)  # chains ended (or silent) this long ago leave the ledger
ANNOUNCE_LEASE = timedelta(seconds=60)  # a chain being announced is another's to take after this


@dataclass(frozen=True, slots=True)
class Match:
    chain_id: str
    link: int
    name: str  # the archive file name, `{chain}-{link}-{n}.mp3`; "" while not `finished`
    finished: bool = True  # False: the link is still in progress, the file not claimed yet


@dataclass(frozen=True, slots=True)
class Announcement:
    chain_id: str
    link: int
    names: tuple[str, ...]
    ended: CallEnded
    lease: float  # what `announced()` hands back


class RecordingLedger:
    """`await RecordingLedger.open(zone, address)`: a path (SQLite) or a postgresql:// URL."""

    def __init__(self, zone: ZoneInfo, db: Database) -> None:
        self._zone = zone
        self._db = db

    @classmethod
    async def open(cls, zone: ZoneInfo, address: Path | str = ":memory:") -> "RecordingLedger":
        db = await open_database(address, SCHEMA, "the recordings ledger")
        for table, columns in COLUMNS.items():
            await db.add_columns(table, columns)
        return cls(zone, db)

    async def close(self) -> None:
        await self._db.close()

    async def apply(self, event: Event, received: datetime) -> None:
        """Take in a bus event; `received` is when this service got it (its own clock: waiting
        times count from there, talk times from the events' PBX timestamps)."""
        if isinstance(event, DirectorySnapshot):
            async with self._db.transaction() as tx:
                await tx.execute("DELETE FROM recording_options")
                await tx.execute_many(
                    "INSERT INTO recording_options VALUES (?, ?)",
                    [(e.number, e.recording) for e in event.directory.extensions],
                )
        elif isinstance(event, CallAnswered | CallEnded):
            async with self._db.transaction() as tx:
                if await tx.execute(
                    "INSERT INTO seen (event_id, at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (str(event.event_id), received.timestamp()),
                ):
                    await self._call(tx, event, received)
            # a copy of an event taken already (sent again by the monitor) changes nothing

    @staticmethod
    async def _call(tx: Database, event: CallAnswered | CallEnded, received: datetime) -> None:
        if isinstance(event, CallAnswered):
            await tx.execute(
                "INSERT INTO chains (chain_id, call_number, seen) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (event.chain_id, event.call_number, received.timestamp()),
            )
            await tx.execute(
                "INSERT INTO links (chain_id, link, extension, started) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (chain_id, link) DO UPDATE SET extension = excluded.extension,"
                " started = excluded.started, ended_at = NULL, ended = NULL",
                (event.chain_id, event.link, event.extension, event.occurred_at.timestamp()),
            )
            return
        if event.answered:
            await tx.execute(
                "UPDATE links SET ended_at = ?, ended = ? WHERE chain_id = ? AND link = ?",
                (event.occurred_at.timestamp(), event.model_dump_json(), event.chain_id, event.link),
            )
        if event.chain_ended:
            await tx.execute(
                "UPDATE chains SET ended_at = ? WHERE chain_id = ? AND ended_at IS NULL",
                (received.timestamp(), event.chain_id),
            )

    async def match(self, recording: PbxRecording, now: datetime) -> Match | None:
        """The link `recording` belongs to, claiming the file; None when no link fits, or when
        the file was claimed already (`claimed()` tells which).

        A link of the extension that was in progress when the file began fits, the file's own
        call (its number in the name) first; and a link of the file's own call that the monitor
        saw only later (it was away when the call was answered) fits too."""
        started = recording.started.replace(tzinfo=self._zone).timestamp()
        slack = SLACK.total_seconds()
        number = recording.number
        row = await self._db.one(
            "SELECT l.chain_id, l.link, l.ended_at IS NOT NULL OR c.ended_at IS NOT NULL"
            " FROM links l JOIN chains c USING (chain_id)"
            " WHERE l.extension = ?"
            " AND (l.started - ? <= ? OR c.call_number = ?)"
            " AND (l.ended_at IS NULL OR ? <= l.ended_at + ?)"
            " ORDER BY c.call_number != ?, l.started - ? > ?, abs(l.started - ?)"
            " LIMIT 1",
            (recording.extension, slack, started, number, started, slack, number, slack, started, started),
        )
        if row is None:
            return None
        chain_id, link, finished = row
        if not finished:
            return Match(chain_id, link, "", finished=False)
        async with self._db.transaction() as tx:
            if not await tx.execute(
                "INSERT INTO files (path, chain_id, link, started, queued) VALUES (?, ?, ?, ?, 0)"
                " ON CONFLICT DO NOTHING",
                (str(recording.path), chain_id, link, started),
            ):
                return None  # claimed already
            files = await tx.all(
                "SELECT path FROM files WHERE chain_id = ? AND link = ? ORDER BY started", (chain_id, link)
            )
            for number, (path,) in enumerate(files, 1):
                await tx.execute(
                    "UPDATE files SET name = ? WHERE path = ?",
                    (archive_name(f"{chain_id}-{link}", number), path),
                )
            await tx.execute(  # a file after the announcement opens the chain again
                "UPDATE chains SET last_file_at = ?, announced = 0, leased_until = NULL WHERE chain_id = ?",
                (now.timestamp(), chain_id),
            )
            name = await tx.one("SELECT name FROM files WHERE path = ?", (str(recording.path),))
        assert name is not None
        return Match(chain_id, link, name[0])

    async def queued(self, path: Path) -> None:
        """The conversion job of the file claimed at `path` is safe in the work queue."""
        await self._db.execute("UPDATE files SET queued = 1 WHERE path = ?", (str(path),))

    async def release(self, path: Path) -> None:
        """Give up the claim on `path` (its job could not be handed out): it can be matched again."""
        await self._db.execute("DELETE FROM files WHERE path = ? AND queued = 0", (str(path),))

    async def release_unqueued(self) -> int:
        """Give up every claim whose job was never confirmed handed out (a replica killed between
        the claim and the confirm), so that the files are matched again; how many. A replica in
        the middle of handing one out may then see it handed out twice: converting the same file
        twice gives the same MP3, and the second result changes nothing."""
        return await self._db.execute("DELETE FROM files WHERE queued = 0 AND done = 0")

    async def claimed(self, path: Path) -> bool:
        return await self._db.one("SELECT 1 FROM files WHERE path = ?", (str(path),)) is not None

    async def settled(self, chain_id: str, link: int, path: Path, converted: bool) -> None:
        async with self._db.transaction() as tx:
            changed = await tx.execute(
                "UPDATE files SET done = 1, converted = ? WHERE path = ? AND chain_id = ?",
                (int(converted), str(path), chain_id),
            )
            if converted:  # announced without it (its conversion took too long): once more, with it
                await tx.execute(
                    "UPDATE chains SET announced = 0, leased_until = NULL"
                    " WHERE chain_id = ? AND announced = 1",
                    (chain_id,),
                )
        if not changed:
            raise KeyError(f"{path} is not a file of {chain_id}-{link}")

    async def due(self, now: datetime, quiet: timedelta, max_wait: timedelta) -> list[Announcement]:
        """The announcements due, their chains leased to the caller until ANNOUNCE_LEASE from now."""
        out: list[Announcement] = []
        stamp = now.timestamp()
        lease = stamp + ANNOUNCE_LEASE.total_seconds()
        ended = await self._db.all(
            "SELECT chain_id, ended_at, last_file_at FROM chains WHERE ended_at IS NOT NULL"
            " AND announced = 0 AND coalesce(leased_until, 0) < ?",
            (stamp,),
        )
        for chain_id, ended_at, last_file_at in ended:
            if not await self._ready(chain_id, stamp, ended_at, last_file_at, quiet, max_wait):
                continue
            if not await self._db.execute(
                "UPDATE chains SET leased_until = ? WHERE chain_id = ? AND announced = 0"
                " AND coalesce(leased_until, 0) < ?",
                (lease, chain_id, stamp),
            ):
                continue  # another replica is announcing it
            announcements = await self._announcements(chain_id, lease)
            out += announcements
            if not announcements:  # no file to announce: done with it
                await self._done(chain_id, lease)
        await self._forget(stamp - FORGET_AFTER.total_seconds())
        return out

    async def announced(self, items: list[Announcement]) -> None:
        """Their announcements were published: done with their chains (unless a file came since)."""
        for chain_id, lease in {(item.chain_id, item.lease) for item in items}:
            await self._done(chain_id, lease)

    async def _done(self, chain_id: str, lease: float) -> None:
        await self._db.execute(
            "UPDATE chains SET announced = 1, leased_until = NULL WHERE chain_id = ? AND leased_until = ?",
            (chain_id, lease),
        )

    async def turned(self, wall: float) -> None:
        """The service looked at the folder at `wall` (the file system's clock)."""
        await self._db.execute(
            "INSERT INTO meta (key, value) VALUES ('last_turn', ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (wall,),
        )

    async def last_turn(self) -> float | None:
        row = await self._db.one("SELECT value FROM meta WHERE key = 'last_turn'")
        return None if row is None else float(row[0])

    async def _ready(
        self,
        chain_id: str,
        now: float,
        ended_at: float,
        last_file_at: float | None,
        quiet: timedelta,
        max_wait: timedelta,
    ) -> bool:
        pending = await self._db.one(
            "SELECT count(*) FROM files WHERE chain_id = ? AND done = 0", (chain_id,)
        )
        if pending and pending[0]:
            return now >= ended_at + 4 * max_wait.total_seconds()  # a conversion stuck that long is abandoned
        if now >= ended_at + max_wait.total_seconds():
            return True
        if last_file_at is not None and now < last_file_at + quiet.total_seconds():
            return False
        missing = await self._db.one(
            "SELECT count(*) FROM links l JOIN recording_options r USING (extension)"
            " WHERE l.chain_id = ? AND r.recording != 'off'"
            " AND NOT EXISTS (SELECT 1 FROM files f WHERE f.chain_id = l.chain_id AND f.link = l.link)",
            (chain_id,),
        )
        return missing is not None and missing[0] == 0

    async def _announcements(self, chain_id: str, lease: float) -> list[Announcement]:
        out = []
        links = await self._db.all(
            "SELECT link, ended FROM links WHERE chain_id = ? AND ended IS NOT NULL ORDER BY link",
            (chain_id,),
        )
        for link, ended in links:
            files = await self._db.all(
                "SELECT name FROM files WHERE chain_id = ? AND link = ? AND converted = 1 ORDER BY started",
                (chain_id, link),
            )
            if files:
                names = tuple(name for (name,) in files)
                out.append(Announcement(chain_id, link, names, CallEnded.model_validate_json(ended), lease))
        return out

    async def _forget(self, before: float) -> None:
        """Drop chains announced, or silent, since `before` (files keep their claim a while longer
        through the chain's row: it goes with the rest)."""
        old = await self._db.all("SELECT chain_id FROM chains WHERE coalesce(ended_at, seen) < ?", (before,))
        async with self._db.transaction() as tx:
            await tx.execute("DELETE FROM seen WHERE at < ?", (before,))
            for (chain_id,) in old:
                for table in ("files", "links", "chains"):
                    await tx.execute(f"DELETE FROM {table} WHERE chain_id = ?", (chain_id,))
