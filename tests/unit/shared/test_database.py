"""shared.database: one API over SQLite and PostgreSQL; a PostgreSQL that is away at start is
one error naming the database without its password, one that goes away while running is a
passing fault (the message is handled again, not dead-lettered), and its transactions hold the
writer lock as SQLite's do."""

import asyncio
import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from shared import database, sqlite
from shared.bus import transient
from shared.checkpointer import Checkpointer
from shared.database import DatabaseUnavailable, open_database
from shared.sqlite import open_database as open_sqlite

SCHEMA = "CREATE TABLE IF NOT EXISTS counts (id {serial}, name TEXT NOT NULL, n INTEGER NOT NULL);"


async def test_a_database_that_cannot_be_reached_is_named_without_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(database, "CONNECT_TIMEOUT", 0.5)
    address = "postgresql://callbridge:s3cr3t-password@127.0.0.1:1/callbridge"  # nothing listens on port 1
    with pytest.raises(
        OSError, match=r"^the delivery store postgresql://callbridge:\*\*\*@127.0.0.1:1/"
    ) as error:
        await open_database(address, SCHEMA, "the delivery store")
    assert "s3cr3t" not in str(error.value)


async def test_a_connection_lost_while_running_is_a_passing_fault(
    postgres_database: str, postgres_url: str
) -> None:
    db = await open_database(postgres_database, SCHEMA, "the counts")
    await db.execute("INSERT INTO counts (name, n) VALUES (?, ?)", ("a", 1))
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as admin:
        await admin.execute(  # what a PostgreSQL restart does to the pool's connections
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = '' AND datname = current_database() AND pid != pg_backend_pid()"
            " AND query NOT LIKE '%%pg_terminate_backend%%'"
        )
    lost: list[Exception] = []
    for _ in range(3):  # the pool's idle connection is the one cut; the next is a new one
        try:
            await db.all("SELECT n FROM counts")
        except DatabaseUnavailable as error:
            lost.append(error)
    assert len(lost) == 1 and transient(lost[0])
    assert await db.all("SELECT name, n FROM counts") == [("a", 1)]  # the pool connected again
    await db.close()


async def test_transactions_take_turns(database_address: str) -> None:
    """Two tasks each read a count and write it back plus one, in a transaction: none is lost."""
    db = await open_database(database_address, SCHEMA, "the counts")
    await db.execute("INSERT INTO counts (name, n) VALUES ('c', 0)")

    async def add_one() -> None:
        async with db.transaction() as tx:
            row = await tx.one("SELECT n FROM counts WHERE name = 'c'")
            assert row is not None
            await asyncio.sleep(0)  # let the other task try meanwhile
            await tx.execute("UPDATE counts SET n = ? WHERE name = 'c'", (row[0] + 1,))

    await asyncio.gather(*(add_one() for _ in range(20)))
    assert await db.one("SELECT n FROM counts WHERE name = 'c'") == (20,)

    async def change_and_fail() -> None:
        async with db.transaction() as tx:
            await tx.execute("UPDATE counts SET n = 0")
            raise RuntimeError("changed my mind")

    with pytest.raises(RuntimeError):
        await change_and_fail()
    assert await db.one("SELECT n FROM counts") == (20,)  # rolled back
    assert await db.columns("counts") == {"id", "name", "n"}
    await db.close()


def test_replicas_that_create_the_same_sqlite_file_at_once_all_open_it(tmp_path: Path) -> None:
    """Four processes open new files at the same instants, twelve times: none is refused (the
    switch of a new file to WAL does not wait for another's lock by itself)."""
    rounds, start = 12, time.time() + 1.0
    opener = (
        "import sys, time; from pathlib import Path; from shared.sqlite import open_database\n"
        "folder, start = Path(sys.argv[1]), float(sys.argv[2])\n"
        f"for n in range({rounds}):\n"
        "    time.sleep(max(0.0, start + n * 0.1 - time.time()))\n"
        "    open_database(folder / f'{n}.db', 'CREATE TABLE IF NOT EXISTS t (x)', 'the store').close()\n"
    )
    replicas = [
        subprocess.Popen([sys.executable, "-c", opener, str(tmp_path), str(start)], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    errors = [replica.communicate(timeout=60)[1].decode() for replica in replicas]
    assert [replica.returncode for replica in replicas] == [0, 0, 0, 0], errors


async def test_a_column_two_replicas_add_at_once_is_added_once(database_address: str) -> None:
    """Both looked before either added it: the second adds nothing, and does not fail."""
    db = await open_database(database_address, "CREATE TABLE IF NOT EXISTS t (a TEXT);", "a test database")
    await db.add_column("t", "b TEXT NOT NULL DEFAULT ''")
    await db.add_column("t", "b TEXT NOT NULL DEFAULT ''")
    await db.add_columns("t", ["b TEXT", "c INTEGER"])
    assert await db.columns("t") == {"a", "b", "c"}
    await db.close()


def test_the_wal_is_checkpointed_beside_the_writer_not_by_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own checkpoint, in the statement that fills the WAL past 1,000 pages, stopped the
    event loop: the writer leaves it to the checkpointer's thread (its turns here when the test
    calls them)."""
    monkeypatch.setattr(sqlite, "CHECKPOINT_EVERY", 3600.0)
    path = tmp_path / "store.db"
    db = open_sqlite(path, "CREATE TABLE t (x BLOB);", "the test store", synchronous="NORMAL")
    checkpointer = db.checkpointer
    assert checkpointer is not None and checkpointer.running
    try:
        for _ in range(300):  # ~1,500 pages of WAL
            db.execute("INSERT INTO t VALUES (?)", (os.urandom(16_000),))
        assert path.stat().st_size < 100_000  # every page still in the WAL
        checkpointer.turn()
        assert path.stat().st_size > 300 * 16_000  # copied into the database file
        assert db.execute("SELECT count(*) FROM t").fetchone() == (300,)
    finally:
        db.close()
    assert not checkpointer.running


def test_the_checkpointer_ends_with_a_connection_dropped_unclosed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite, "CHECKPOINT_EVERY", 0.01)
    db = open_sqlite(tmp_path / "store.db", "CREATE TABLE t (x);", "the test store")
    checkpointer = db.checkpointer
    assert checkpointer is not None
    del db
    gc.collect()
    checkpointer.wait(timeout=10)
    assert not checkpointer.running


def test_a_checkpoint_that_fails_is_logged_and_raises_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"not a database" * 100)
    checkpointer = Checkpointer(path, every=3600.0)
    checkpointer.turn()
    checkpointer.stop()
    assert f"checkpoint of {path} failed (file is not a database)" in caplog.text
    assert not checkpointer.running
