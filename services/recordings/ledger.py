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

The ledger is kept in SQLite, shared by the recordings replicas of a host: whichever replica is
the active consumer of the call events writes it, a replica that takes over reads it, a file is
claimed by exactly one replica (its path is a primary key), and a chain is announced by exactly
one (an update that only one transaction can win).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.event_base import Event
from shared.events import CallAnswered, CallEnded, DirectorySnapshot
from shared.sqlite import open_database

from .naming import PbxRecording, archive_name

SLACK = timedelta(seconds=3)
FORGET_AFTER = timedelta(days=1)  # chains ended (or silent) this long ago leave the ledger
ANNOUNCE_LEASE = timedelta(seconds=60)  # a chain being announced is another's to take after this

SCHEMA = """
CREATE TABLE IF NOT EXISTS chains (chain_id TEXT PRIMARY KEY, call_number INTEGER NOT NULL,
    seen REAL NOT NULL, ended_at REAL, last_file_at REAL, announced INTEGER NOT NULL DEFAULT 0,
    leased_until REAL);
CREATE TABLE IF NOT EXISTS links (chain_id TEXT NOT NULL, link INTEGER NOT NULL, extension TEXT NOT NULL,
    started REAL NOT NULL, ended_at REAL, ended TEXT, PRIMARY KEY (chain_id, link));
CREATE INDEX IF NOT EXISTS links_extension ON links (extension, started);
CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, chain_id TEXT NOT NULL, link INTEGER NOT NULL,
    started REAL NOT NULL, name TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0,
    converted INTEGER NOT NULL DEFAULT 0, queued INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS files_link ON files (chain_id, link);
CREATE TABLE IF NOT EXISTS recording_options (extension TEXT PRIMARY KEY, recording TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE INDEX IF NOT EXISTS seen_at ON seen (at);
CREATE INDEX IF NOT EXISTS chains_unannounced ON chains (ended_at) WHERE announced = 0;
CREATE INDEX IF NOT EXISTS chains_age ON chains (coalesce(ended_at, seen));
"""
# columns later versions added, for a ledger an earlier version made
COLUMNS = {
    "files": ("queued INTEGER NOT NULL DEFAULT 1",),
    "chains": ("leased_until REAL",),
}


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
    def __init__(self, zone: ZoneInfo, database: Path | str = ":memory:") -> None:
        self._zone = zone
        # synchronous=NORMAL in WAL, as the outbox and the delivery store: a commit survives the
        # process being killed at any instruction; a power cut may lose the last ones (README)
        self._db = open_database(Path(database), SCHEMA, "the recordings ledger", synchronous="NORMAL")
        for table, columns in COLUMNS.items():
            present = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            for column in columns:
                if column.split()[0] not in present:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")

    def apply(self, event: Event, received: datetime) -> None:
        """Take in a bus event; `received` is when this service got it (its own clock: waiting
        times count from there, talk times from the events' PBX timestamps)."""
        db = self._db
        if isinstance(event, DirectorySnapshot):
            with db:
                db.execute("BEGIN")
                db.execute("DELETE FROM recording_options")
                db.executemany(
                    "INSERT INTO recording_options VALUES (?, ?)",
                    [(e.number, e.recording) for e in event.directory.extensions],
                )
        elif isinstance(event, CallAnswered | CallEnded):
            with db:
                db.execute("BEGIN")
                if db.execute(
                    "INSERT OR IGNORE INTO seen (event_id, at) VALUES (?, ?)",
                    (str(event.event_id), received.timestamp()),
                ).rowcount:
                    self._call(event, received)
            # a copy of an event taken already (sent again by the monitor) changes nothing

    def _call(self, event: CallAnswered | CallEnded, received: datetime) -> None:
        db = self._db
        if isinstance(event, CallAnswered):
            db.execute(
                "INSERT OR IGNORE INTO chains (chain_id, call_number, seen) VALUES (?, ?, ?)",
                (event.chain_id, event.call_number, received.timestamp()),
            )
            db.execute(
                "INSERT OR REPLACE INTO links (chain_id, link, extension, started) VALUES (?, ?, ?, ?)",
                (event.chain_id, event.link, event.extension, event.occurred_at.timestamp()),
            )
        else:
            if event.answered:
                db.execute(
                    "UPDATE links SET ended_at = ?, ended = ? WHERE chain_id = ? AND link = ?",
                    (event.occurred_at.timestamp(), event.model_dump_json(), event.chain_id, event.link),
                )
            if event.chain_ended:
                db.execute(
                    "UPDATE chains SET ended_at = ? WHERE chain_id = ? AND ended_at IS NULL",
                    (received.timestamp(), event.chain_id),
                )

    def match(self, recording: PbxRecording, now: datetime) -> Match | None:
        """The link `recording` belongs to, claiming the file; None when no link fits, or when
        the file was claimed already (`claimed()` tells which).

        A link of the extension that was in progress when the file began fits, the file's own
        call (its number in the name) first; and a link of the file's own call that the monitor
        saw only later (it was away when the call was answered) fits too."""
        started = recording.started.replace(tzinfo=self._zone).timestamp()
        slack = SLACK.total_seconds()
        row = self._db.execute(
            "SELECT l.chain_id, l.link, l.ended_at IS NOT NULL OR c.ended_at IS NOT NULL"
            " FROM links l JOIN chains c USING (chain_id)"
            " WHERE l.extension = :extension"
            " AND (l.started - :slack <= :started OR c.call_number = :number)"
            " AND (l.ended_at IS NULL OR :started <= l.ended_at + :slack)"
            " ORDER BY c.call_number != :number, l.started - :slack > :started, abs(l.started - :started)"
            " LIMIT 1",
            {
                "extension": recording.extension,
                "slack": slack,
                "started": started,
                "number": recording.number,
            },
        ).fetchone()
        if row is None:
            return None
        chain_id, link, finished = row
        if not finished:
            return Match(chain_id, link, "", finished=False)
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            claimed = self._db.execute(
                "INSERT OR IGNORE INTO files (path, chain_id, link, started, queued) VALUES (?, ?, ?, ?, 0)",
                (str(recording.path), chain_id, link, started),
            ).rowcount
            if not claimed:
                return None
            files = self._db.execute(
                "SELECT path FROM files WHERE chain_id = ? AND link = ? ORDER BY started", (chain_id, link)
            ).fetchall()
            for number, (path,) in enumerate(files, 1):
                self._db.execute(
                    "UPDATE files SET name = ? WHERE path = ?",
                    (archive_name(f"{chain_id}-{link}", number), path),
                )
            self._db.execute(  # a file after the announcement opens the chain again
                "UPDATE chains SET last_file_at = ?, announced = 0, leased_until = NULL WHERE chain_id = ?",
                (now.timestamp(), chain_id),
            )
        name = self._db.execute("SELECT name FROM files WHERE path = ?", (str(recording.path),)).fetchone()[0]
        return Match(chain_id, link, name)

    def queued(self, path: Path) -> None:
        """The conversion job of the file claimed at `path` is safe in the work queue."""
        self._db.execute("UPDATE files SET queued = 1 WHERE path = ?", (str(path),))

    def release(self, path: Path) -> None:
        """Give up the claim on `path` (its job could not be handed out): it can be matched again."""
        self._db.execute("DELETE FROM files WHERE path = ? AND queued = 0", (str(path),))

    def release_unqueued(self) -> int:
        """Give up every claim whose job was never confirmed handed out (a replica killed between
        the claim and the confirm), so that the files are matched again; how many. A replica of the
        same host in the middle of handing one out may then see it handed out twice: converting
        the same file twice gives the same MP3, and the second result changes nothing."""
        return self._db.execute("DELETE FROM files WHERE queued = 0 AND done = 0").rowcount

    def claimed(self, path: Path) -> bool:
        return self._db.execute("SELECT 1 FROM files WHERE path = ?", (str(path),)).fetchone() is not None

    def settled(self, chain_id: str, link: int, path: Path, converted: bool) -> None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            changed = self._db.execute(
                "UPDATE files SET done = 1, converted = ? WHERE path = ? AND chain_id = ?",
                (int(converted), str(path), chain_id),
            ).rowcount
            if converted:  # announced without it (its conversion took too long): once more, with it
                self._db.execute(
                    "UPDATE chains SET announced = 0, leased_until = NULL"
                    " WHERE chain_id = ? AND announced = 1",
                    (chain_id,),
                )
        if not changed:
            raise KeyError(f"{path} is not a file of {chain_id}-{link}")

    def due(self, now: datetime, quiet: timedelta, max_wait: timedelta) -> list[Announcement]:
        """The announcements due, their chains leased to the caller until ANNOUNCE_LEASE from now."""
        out: list[Announcement] = []
        stamp = now.timestamp()
        lease = stamp + ANNOUNCE_LEASE.total_seconds()
        ended = self._db.execute(
            "SELECT chain_id, ended_at, last_file_at FROM chains WHERE ended_at IS NOT NULL"
            " AND announced = 0 AND coalesce(leased_until, 0) < ?",
            (stamp,),
        ).fetchall()
        for chain_id, ended_at, last_file_at in ended:
            if not self._ready(chain_id, stamp, ended_at, last_file_at, quiet, max_wait):
                continue
            if not self._db.execute(
                "UPDATE chains SET leased_until = ? WHERE chain_id = ? AND announced = 0"
                " AND coalesce(leased_until, 0) < ?",
                (lease, chain_id, stamp),
            ).rowcount:
                continue  # another replica is announcing it
            announcements = self._announcements(chain_id, lease)
            out += announcements
            if not announcements:  # no file to announce: done with it
                self._done(chain_id, lease)
        self._forget(stamp - FORGET_AFTER.total_seconds())
        return out

    def announced(self, items: list[Announcement]) -> None:
        """Their announcements were published: done with their chains (unless a file came since)."""
        for chain_id, lease in {(item.chain_id, item.lease) for item in items}:
            self._done(chain_id, lease)

    def _done(self, chain_id: str, lease: float) -> None:
        self._db.execute(
            "UPDATE chains SET announced = 1, leased_until = NULL WHERE chain_id = ? AND leased_until = ?",
            (chain_id, lease),
        )

    def turned(self, wall: float) -> None:
        """The service looked at the folder at `wall` (the file system's clock)."""
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('last_turn', ?)", (wall,))

    def last_turn(self) -> float | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'last_turn'").fetchone()
        return None if row is None else float(row[0])

    def _ready(
        self,
        chain_id: str,
        now: float,
        ended_at: float,
        last_file_at: float | None,
        quiet: timedelta,
        max_wait: timedelta,
    ) -> bool:
        pending = self._db.execute(
            "SELECT count(*) FROM files WHERE chain_id = ? AND done = 0", (chain_id,)
        ).fetchone()[0]
        if pending:
            return now >= ended_at + 4 * max_wait.total_seconds()  # a conversion stuck that long is abandoned
        if now >= ended_at + max_wait.total_seconds():
            return True
        if last_file_at is not None and now < last_file_at + quiet.total_seconds():
            return False
        missing = self._db.execute(
            "SELECT count(*) FROM links l JOIN recording_options r USING (extension)"
            " WHERE l.chain_id = ? AND r.recording != 'off'"
            " AND NOT EXISTS (SELECT 1 FROM files f WHERE f.chain_id = l.chain_id AND f.link = l.link)",
            (chain_id,),
        ).fetchone()[0]
        return bool(missing == 0)

    def _announcements(self, chain_id: str, lease: float) -> list[Announcement]:
        out = []
        links = self._db.execute(
            "SELECT link, ended FROM links WHERE chain_id = ? AND ended IS NOT NULL ORDER BY link",
            (chain_id,),
        ).fetchall()
        for link, ended in links:
            names = tuple(
                name
                for (name,) in self._db.execute(
                    "SELECT name FROM files WHERE chain_id = ? AND link = ? AND converted = 1"
                    " ORDER BY started",
                    (chain_id, link),
                )
            )
            if names:
                out.append(Announcement(chain_id, link, names, CallEnded.model_validate_json(ended), lease))
        return out

    def _forget(self, before: float) -> None:
        """Drop chains announced, or silent, since `before` (files keep their claim a while longer
        through the chain's row: it goes with the rest)."""
        old = [
            row[0]
            for row in self._db.execute(
                "SELECT chain_id FROM chains WHERE coalesce(ended_at, seen) < ?", (before,)
            )
        ]
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute("DELETE FROM seen WHERE at < ?", (before,))
            for chain_id in old:
                for table in ("files", "links", "chains"):
                    self._db.execute(f"DELETE FROM {table} WHERE chain_id = ?", (chain_id,))
