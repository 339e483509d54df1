"""Which recording belongs to which link, and when a chain's recordings can be announced. Pure.

The ledger follows the call events: a `call.answered` opens a link's talk time on an extension,
its `call.ended` closes it, the chain's last `call.ended` ends the chain; `pbx.directory` says
which extensions record. A PBX file is matched to the link of its extension whose talk time
contains the file's start (within `SLACK`), preferring the chain whose call number is the
file's `(n)`. A link's files are numbered by start time.

A chain is announced once it has ended (as this service saw it), every file matched to it is
converted (or failed), no new file came for `quiet` seconds, and every recording extension's
link has a file, or `max_wait` passed since the chain ended (a recording that never comes does
not hold the others back for ever). One announcement per link with files; then the chain is forgotten.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from shared.events import CallAnswered, CallEnded, DirectorySnapshot, Event

from .naming import PbxRecording, archive_name

SLACK = timedelta(seconds=3)


@dataclass
class _File:
    started: datetime
    name: str = ""  # the archive name, once numbered
    done: bool = False  # converted, or failed for good
    converted: bool = False


@dataclass
class _Link:
    extension: str
    started: datetime
    ended: CallEnded | None = None
    files: dict[Path, _File] = field(default_factory=dict)


@dataclass
class _Chain:
    call_number: int
    links: dict[int, _Link] = field(default_factory=dict)
    ended_at: datetime | None = None
    last_file_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Match:
    chain_id: str
    link: int
    name: str  # the archive file name, `{chain}-{link}-{n}.mp3`


@dataclass(frozen=True, slots=True)
class Announcement:
    chain_id: str
    link: int
    names: tuple[str, ...]
    ended: CallEnded


class RecordingLedger:
    def __init__(self, zone: ZoneInfo) -> None:
        self._zone = zone
        self._chains: dict[str, _Chain] = {}
        self._recording: dict[str, str] = {}  # extension → off | external | all

    def apply(self, event: Event, received: datetime) -> None:
        """Take in a bus event; `received` is when this service got it (its own clock: waiting
        times count from there, talk times from the events' PBX timestamps)."""
        if isinstance(event, DirectorySnapshot):
            self._recording = {e.number: e.recording for e in event.directory.extensions}
        elif isinstance(event, CallAnswered):
            chain = self._chains.setdefault(event.chain_id, _Chain(event.call_number))
            chain.links[event.link] = _Link(event.extension, event.occurred_at)
        elif isinstance(event, CallEnded):
            ended = self._chains.get(event.chain_id)
            if ended is None:
                return  # never answered, nothing recorded: nothing to announce
            link = ended.links.get(event.link)
            if link is not None and event.answered:
                link.ended = event
            if event.chain_ended:
                ended.ended_at = received

    def match(self, recording: PbxRecording, now: datetime) -> Match | None:
        started = recording.started.replace(tzinfo=self._zone)
        candidates = sorted(self._chains.items(), key=lambda item: item[1].call_number != recording.number)
        for chain_id, chain in candidates:
            for number, link in chain.links.items():
                end = link.ended.occurred_at if link.ended else None
                if link.extension != recording.extension or started < link.started - SLACK:
                    continue
                if end is not None and started > end + SLACK:
                    continue
                link.files[recording.path] = _File(started)
                chain.last_file_at = now
                ordered = sorted(link.files.values(), key=lambda f: f.started)
                for index, item in enumerate(ordered, 1):
                    item.name = archive_name(f"{chain_id}-{number}", index)
                return Match(chain_id, number, link.files[recording.path].name)
        return None

    def settled(self, chain_id: str, link: int, path: Path, converted: bool) -> None:
        item = self._chains[chain_id].links[link].files[path]
        item.done, item.converted = True, converted

    def due(self, now: datetime, quiet: timedelta, max_wait: timedelta) -> list[Announcement]:
        out: list[Announcement] = []
        for chain_id, chain in list(self._chains.items()):
            if chain.ended_at is None or not self._ready(chain, now, quiet, max_wait):
                continue
            for number, link in sorted(chain.links.items()):
                names = tuple(
                    f.name for f in sorted(link.files.values(), key=lambda f: f.started) if f.converted
                )
                if names and link.ended is not None:
                    out.append(Announcement(chain_id, number, names, link.ended))
            del self._chains[chain_id]
        return out

    def _ready(self, chain: _Chain, now: datetime, quiet: timedelta, max_wait: timedelta) -> bool:
        assert chain.ended_at is not None
        files = [f for link in chain.links.values() for f in link.files.values()]
        if any(not f.done for f in files):
            return now >= chain.ended_at + max_wait * 4  # a conversion stuck that long is abandoned
        if now >= chain.ended_at + max_wait:
            return True
        if chain.last_file_at is not None and now < chain.last_file_at + quiet:
            return False
        expected = [
            link for link in chain.links.values() if self._recording.get(link.extension, "off") != "off"
        ]
        return all(link.files for link in expected)
