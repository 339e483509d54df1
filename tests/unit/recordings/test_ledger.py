"""Matching files to links, numbering them, and deciding when a chain's recordings are announced."""

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

from services.recordings.ledger import ANNOUNCE_LEASE, RecordingLedger
from services.recordings.naming import PbxRecording
from shared.database import Sqlite
from shared.directory import Directory, Extension
from shared.events import CallAnswered, CallEnded, DirectorySnapshot
from tests.factories import make_call_ended

T0 = datetime(2021, 12, 30, 9, 6, 14, tzinfo=UTC)  # 10:06:14 in Prague
PRAGUE = ZoneInfo("Europe/Prague")
CHAIN = {"chain_id": "211230100614_665", "call_number": 665, "direction": "inbound", "external_number": "1"}
QUIET, WAIT = timedelta(seconds=5), timedelta(seconds=120)


def answered(link: int, extension: str, at: float) -> CallAnswered:
    return CallAnswered(
        occurred_at=T0 + timedelta(seconds=at),
        source="t",
        seq=1,
        link=link,
        extension=extension,
        transfer_type="NotDef",
        **CHAIN,
    )


def ended(link: int, extension: str, at: float, last: bool) -> CallEnded:
    return make_call_ended(
        occurred_at=T0 + timedelta(seconds=at), link=link, extension=extension, chain_ended=last, **CHAIN
    )


async def feed(ledger: RecordingLedger, *events: CallAnswered | CallEnded) -> None:
    """In these tests the service hears of each event at the moment it happened."""
    for event in events:
        await ledger.apply(event, event.occurred_at)


async def blind_transfer(ledger: RecordingLedger) -> None:
    """102 answers at 5 s and transfers at 30 s; 103 talks from 35 s until the caller leaves at 95 s."""
    await feed(
        ledger,
        answered(1, "102", 5),
        ended(1, "102", 30, False),
        answered(2, "103", 35),
        ended(2, "103", 95, True),
    )


def recording(extension: str, local: str, number: int = 665) -> PbxRecording:
    started = datetime.fromisoformat(f"2021-12-30T{local}")
    path = Path(f"/pbx/{extension}/[1]_1-{extension}_{started:%Y%m%d%H%M%S}({number}).wav")
    return PbxRecording(path, extension, "1", extension, started, number)


async def ledger_with_directory(address: str, *recording_extensions: str) -> RecordingLedger:
    ledger = await RecordingLedger.open(PRAGUE, address)
    extensions = tuple(Extension(number=n, recording="all") for n in recording_extensions)
    snapshot = DirectorySnapshot(
        occurred_at=T0, source="t", seq=1, directory=Directory(extensions=extensions)
    )
    await ledger.apply(snapshot, T0)
    return ledger


async def test_files_match_their_link_and_are_numbered_by_start(database_address: str) -> None:
    ledger = await ledger_with_directory(database_address, "102", "103")
    await blind_transfer(ledger)
    now = T0 + timedelta(seconds=100)
    late = await ledger.match(recording("103", "10:07:20"), now)  # the second stretch, found first
    first = await ledger.match(recording("103", "10:06:49"), now)
    found = await ledger.match(recording("102", "10:06:19"), now)
    assert found is not None and found.name == "211230100614_665-1-1.mp3"
    assert (first.link, first.name) == (2, "211230100614_665-2-1.mp3")  # type: ignore[union-attr]
    assert late is not None and late.link == 2
    assert await ledger.match(recording("104", "10:06:49"), now) is None  # not on the call
    assert await ledger.match(recording("102", "10:09:00"), now) is None  # after its link ended


async def test_announced_once_everything_is_converted_and_quiet(database_address: str) -> None:
    ledger = await ledger_with_directory(database_address, "102")
    await feed(ledger, answered(1, "102", 5))
    await feed(ledger, ended(1, "102", 30, True))
    end = T0 + timedelta(seconds=30)
    assert await ledger.due(end, QUIET, WAIT) == []  # the recording extension's file has not come yet
    found = recording("102", "10:06:19")
    await ledger.match(found, end + timedelta(seconds=10))
    assert await ledger.due(end + timedelta(seconds=11), QUIET, WAIT) == []  # being converted
    await ledger.settled("211230100614_665", 1, found.path, converted=True)
    assert await ledger.due(end + timedelta(seconds=12), QUIET, WAIT) == []  # another stretch may follow
    [announcement] = await ledger.due(end + timedelta(seconds=16), QUIET, WAIT)
    assert (announcement.link, announcement.names) == (1, ("211230100614_665-1-1.mp3",))
    assert announcement.ended.link == 1
    assert await ledger.due(end + timedelta(seconds=17), QUIET, WAIT) == []  # once


async def test_a_missing_recording_holds_nothing_back_for_ever(database_address: str) -> None:
    ledger = await ledger_with_directory(database_address, "102", "103")
    await blind_transfer(ledger)
    found = recording("102", "10:06:19")
    await ledger.match(found, T0 + timedelta(seconds=96))
    await ledger.settled("211230100614_665", 1, found.path, converted=True)
    end = T0 + timedelta(seconds=95)
    assert await ledger.due(end + timedelta(seconds=60), QUIET, WAIT) == []  # 103's file may still come
    [only] = await ledger.due(end + WAIT, QUIET, WAIT)
    assert only.link == 1


async def test_failed_conversions_are_left_out(database_address: str) -> None:
    ledger = await ledger_with_directory(database_address, "102")
    await feed(ledger, answered(1, "102", 5))
    await feed(ledger, ended(1, "102", 30, True))
    broken = recording("102", "10:06:19")
    await ledger.match(broken, T0 + timedelta(seconds=31))
    await ledger.settled("211230100614_665", 1, broken.path, converted=False)
    assert (
        await ledger.due(T0 + timedelta(seconds=40), QUIET, WAIT) == []
    )  # no converted file: nothing to send


async def test_a_file_that_comes_after_the_announcement_is_announced_with_its_link(
    database_address: str,
) -> None:
    ledger = await ledger_with_directory(database_address, "102")
    await feed(ledger, answered(1, "102", 5), ended(1, "102", 30, True))
    first = recording("102", "10:06:19")
    assert await ledger.match(first, T0 + timedelta(seconds=31)) is not None
    await ledger.settled("211230100614_665", 1, first.path, converted=True)
    [announced] = await ledger.due(T0 + timedelta(seconds=40), QUIET, WAIT)
    await ledger.announced([announced])
    late = await ledger.match(recording("102", "10:06:35"), T0 + timedelta(seconds=60))  # the PBX was slow
    assert late is not None and late.name == "211230100614_665-1-2.mp3"
    await ledger.settled("211230100614_665", 1, recording("102", "10:06:35").path, converted=True)
    [again] = await ledger.due(T0 + timedelta(seconds=70), QUIET, WAIT)
    assert again.names == ("211230100614_665-1-1.mp3", "211230100614_665-1-2.mp3")


async def test_a_file_waits_for_its_link_to_end(database_address: str) -> None:
    ledger = await ledger_with_directory(database_address, "102")
    await feed(ledger, answered(1, "102", 5))
    on_hold = recording("102", "10:06:19")  # unchanged for a while: the call is on hold
    waiting = await ledger.match(on_hold, T0 + timedelta(seconds=60))
    assert waiting is not None and not waiting.finished and not await ledger.claimed(on_hold.path)
    await feed(ledger, ended(1, "102", 90, True))
    done = await ledger.match(on_hold, T0 + timedelta(seconds=91))
    assert done is not None and done.finished and await ledger.claimed(on_hold.path)


async def test_an_announcement_not_confirmed_is_due_again_once_its_lease_runs_out(
    database_address: str,
) -> None:
    ledger = await ledger_with_directory(database_address, "102")
    await feed(ledger, answered(1, "102", 5), ended(1, "102", 30, True))
    found = recording("102", "10:06:19")
    await ledger.match(found, T0 + timedelta(seconds=31))
    await ledger.settled("211230100614_665", 1, found.path, converted=True)
    at = T0 + timedelta(seconds=40)
    [first] = await ledger.due(at, QUIET, WAIT)  # then the replica dies before the broker confirms
    assert await ledger.due(at + ANNOUNCE_LEASE / 2, QUIET, WAIT) == []  # leased: nobody else takes it
    [again] = await ledger.due(at + ANNOUNCE_LEASE * 1.1, QUIET, WAIT)
    assert (again.chain_id, again.link, again.names) == (first.chain_id, first.link, first.names)
    await ledger.announced([first])  # the first's late confirmation does not close the second's lease
    await ledger.announced([again])
    assert await ledger.due(at + ANNOUNCE_LEASE * 3, QUIET, WAIT) == []


async def test_the_ledger_survives_a_restart_and_is_shared(database_address: str) -> None:
    database = database_address
    first = await RecordingLedger.open(PRAGUE, database)
    directory = (Extension(number="102", recording="all"),)
    await first.apply(
        DirectorySnapshot(occurred_at=T0, source="t", seq=1, directory=Directory(extensions=directory)), T0
    )
    await feed(first, answered(1, "102", 5))
    # the replica that kept the ledger stops; another takes over from the same file
    await first.close()
    second, other = await RecordingLedger.open(PRAGUE, database), await RecordingLedger.open(PRAGUE, database)
    await feed(second, ended(1, "102", 30, True))
    found = recording("102", "10:06:19")
    now = T0 + timedelta(seconds=31)
    assert await second.match(found, now) is not None
    assert await other.match(found, now) is None and await other.claimed(found.path)  # claimed once
    await second.settled("211230100614_665", 1, found.path, converted=True)
    later = T0 + timedelta(seconds=40)
    announced = await second.due(later, QUIET, WAIT) + await other.due(later, QUIET, WAIT)
    assert [(a.link, a.names) for a in announced] == [(1, ("211230100614_665-1-1.mp3",))]  # announced once


async def test_a_copy_of_an_event_taken_already_changes_nothing(database_address: str) -> None:
    ledger = await ledger_with_directory(database_address, "102", "103")
    first = answered(1, "102", 5)
    await feed(ledger, first, ended(1, "102", 30, False), answered(2, "103", 35))
    await feed(ledger, first)  # sent again by the monitor after its link ended
    await feed(ledger, ended(2, "103", 95, True))
    found = recording("102", "10:06:19")
    await ledger.match(found, T0 + timedelta(seconds=96))
    await ledger.settled("211230100614_665", 1, found.path, converted=True)
    [only] = await ledger.due(T0 + timedelta(seconds=95) + WAIT, QUIET, WAIT)
    assert (only.link, only.ended.occurred_at) == (1, T0 + timedelta(seconds=30))  # still ended


async def test_a_link_seen_late_takes_the_file_of_its_own_call(database_address: str) -> None:
    ledger = await ledger_with_directory(database_address, "102")
    # the monitor was away when 102 answered at 5 s: it saw the link only at 40 s
    await feed(ledger, answered(1, "102", 40), ended(1, "102", 90, True))
    other_call = recording("102", "10:06:19", number=700)
    assert await ledger.match(other_call, T0 + timedelta(seconds=91)) is None  # not this call's file
    found = await ledger.match(recording("102", "10:06:19"), T0 + timedelta(seconds=91))
    assert found is not None and (found.chain_id, found.link) == ("211230100614_665", 1)


async def test_a_claim_never_handed_out_is_given_up_after_a_crash(database_address: str) -> None:
    ledger = await RecordingLedger.open(PRAGUE, database_address)
    await feed(ledger, answered(1, "102", 5), answered(2, "103", 6), ended(1, "102", 20, False))
    await feed(ledger, ended(2, "103", 25, True))
    handed, cut = recording("102", "10:06:19"), recording("103", "10:06:20")
    assert await ledger.match(handed, T0 + timedelta(seconds=30)) is not None
    await ledger.queued(handed.path)
    assert (
        await ledger.match(cut, T0 + timedelta(seconds=30)) is not None
    )  # killed before its job was confirmed
    await ledger.close()  # killed; it starts again
    restarted = await RecordingLedger.open(PRAGUE, database_address)
    assert await restarted.release_unqueued() == 1
    assert await restarted.claimed(handed.path) and not await restarted.claimed(cut.path)
    assert await restarted.match(cut, T0 + timedelta(seconds=40)) is not None  # matched again


async def test_a_ledger_from_before_handed_out_claims_keeps_them(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE files (path TEXT PRIMARY KEY, chain_id TEXT NOT NULL, link INTEGER NOT NULL,"
        " started REAL NOT NULL, name TEXT NOT NULL DEFAULT '', done INTEGER NOT NULL DEFAULT 0,"
        " converted INTEGER NOT NULL DEFAULT 0)"
    )
    old.execute("INSERT INTO files (path, chain_id, link, started) VALUES ('/pbx/a.wav', 'c', 1, 0)")
    old.commit()
    old.close()
    ledger = await RecordingLedger.open(PRAGUE, path)
    assert await ledger.release_unqueued() == 0 and await ledger.claimed(Path("/pbx/a.wav"))


async def test_looking_for_due_announcements_does_not_read_every_chain_of_the_day() -> None:
    """`due()` runs at every chain's end; the chains announced already (a day of them) stay unread
    (SQLite's steps counted; the PostgreSQL schema has the same indexes)."""

    async def steps_of_due(announced: int) -> int:
        ledger = await ledger_with_directory(":memory:", "102")
        stamp = T0.timestamp()
        await ledger._db.execute_many(
            "INSERT INTO chains (chain_id, call_number, seen, ended_at, announced) VALUES (?, ?, ?, ?, 1)",
            ((f"old{n}", n, stamp - 60, stamp - 30) for n in range(announced)),
        )
        await blind_transfer(ledger)
        steps = 0

        def count() -> int:
            nonlocal steps
            steps += 1
            return 0

        cast(Sqlite, ledger._db)._db.set_progress_handler(count, 100)
        await ledger.due(T0 + timedelta(seconds=95) + WAIT, QUIET, WAIT)
        return steps

    assert await steps_of_due(20_000) <= await steps_of_due(1_000) + 5
