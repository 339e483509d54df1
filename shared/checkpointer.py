"""A SQLite database's WAL checkpointed by a thread of its own, beside the event loop (why:
`shared/sqlite.py`)."""

import logging
import sqlite3
import threading
import weakref
from pathlib import Path

logger = logging.getLogger(__name__)


class Connection(sqlite3.Connection):
    """A connection whose WAL its `checkpointer` checkpoints (None: an in-memory database)."""

    checkpointer: "Checkpointer | None" = None

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()
        super().close()


class Checkpointer:
    """Checkpoints the database at `path` every `every` seconds on a thread of its own, until
    `stop` or until `owner` (the connection it works for, if given) is gone. A checkpoint that
    fails is logged and tried again at the next turn."""

    def __init__(self, path: Path, every: float, owner: sqlite3.Connection | None = None) -> None:
        self._path = path
        self._every = every
        self._owner = (lambda: True) if owner is None else weakref.ref(owner)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"checkpoint {path.name}", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def turn(self) -> None:
        """One checkpoint, PASSIVE: it copies what no reader still needs and waits for no one."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as error:
            logger.warning("checkpoint of %s failed (%s); the next turn tries again", self._path, error)

    def stop(self) -> None:
        self._stopping.set()
        self.wait()

    def wait(self, timeout: float | None = None) -> None:
        """Until the thread has ended (at most `timeout` seconds)."""
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while not self._stopping.wait(self._every) and self._owner() is not None:
                self.turn()
        finally:
            self._db.close()
