"""The 3CX driver's backlog: what the monitor has not taken yet waits in order, the first
thousands in memory and the rest on disk; a disk that refuses keeps them in memory, still in order."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.monitor.threecx.backlog import Backlog
from services.monitor.updates import DirectoryUpdate, ParticipantUpdate, PbxUpdate, RegistrationUpdate
from shared.directory import Directory, Extension

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def update(n: int) -> PbxUpdate:
    at = T0 + timedelta(milliseconds=n)
    if n % 50 == 0:
        return RegistrationUpdate(at, "102", registered=bool(n % 100))
    if n % 333 == 0:
        return DirectoryUpdate(at, Directory(extensions=(Extension(number=str(n)),)))
    return ParticipantUpdate(at, "102", "Wextension", n, callid=n // 4, legid=1, status="Ringing")


def take(backlog: Backlog, how_many: int) -> list[PbxUpdate]:
    return [backlog.get_nowait() for _ in range(how_many)]


def test_beyond_the_memory_the_updates_wait_on_disk_and_come_back_in_order(tmp_path: Path) -> None:
    backlog = Backlog(tmp_path / "backlog.db", memory=100)
    sent = [update(n) for n in range(2500)]
    for item in sent[:1500]:
        backlog.put(item)
    assert (backlog.waiting, backlog.on_disk) == (1500, 1400)
    got = take(backlog, 1200)  # the monitor catches up a little: more arrive meanwhile
    for item in sent[1500:]:
        backlog.put(item)
    assert backlog.on_disk > 0 and backlog.waiting - backlog.on_disk <= 1000  # memory stays bounded
    got += take(backlog, backlog.waiting)
    assert got == sent and backlog.empty() and backlog.on_disk == 0
    backlog.put(sent[0])  # an empty backlog starts again from memory
    assert (backlog.waiting, backlog.on_disk, backlog.get_nowait()) == (1, 0, sent[0])


def test_a_disk_that_refuses_keeps_the_updates_in_memory_and_in_order(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backlog = Backlog(tmp_path / "backlog.db", memory=10)
    sent = [update(n) for n in range(3000)]
    for item in sent[:500]:
        backlog.put(item)
    backlog._db.execute("PRAGMA max_page_count = 1")  # type: ignore[union-attr]  # the disk is full
    for item in sent[500:]:
        backlog.put(item)
    assert backlog.waiting == 3000 and 490 <= backlog.on_disk < 600  # the file's last free page filled
    assert [r.message for r in caplog.records if "cannot be written" in r.message] == [
        "the driver's backlog cannot be written (database or disk is full): the updates wait in memory"
    ]  # said once
    assert take(backlog, 3000) == sent and backlog.empty()


async def test_the_monitor_waits_for_the_next_update() -> None:
    backlog = Backlog(None)
    taking = asyncio.create_task(backlog.get())
    await asyncio.sleep(0)
    assert not taking.done()
    backlog.put(update(1))
    assert await taking == update(1)
