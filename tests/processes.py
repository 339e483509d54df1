"""Services run as processes by the tests: their logs read as they come, waited on line by line."""

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path


class Logs:
    """Each started service's log, read line by line as it comes (a pipe left full would stop
    the service at its next log line)."""

    def __init__(self) -> None:
        self.lines: dict[int, list[bytes]] = {}
        self.readers: dict[int, asyncio.Task[None]] = {}
        self.news: dict[int, asyncio.Event] = {}  # set when a line arrives or the log ends

    async def read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        try:
            while line := await process.stderr.readline():
                self.lines[process.pid].append(line)
                self.news[process.pid].set()
        finally:
            self.news[process.pid].set()


LOGS = Logs()


async def spawn(
    argv: Sequence[str], environment: dict[str, str], cwd: Path | None = None
) -> asyncio.subprocess.Process:
    """Start a process whose log (stderr) is read as it comes."""
    process = await asyncio.create_subprocess_exec(
        *argv, env=environment, cwd=cwd, stderr=asyncio.subprocess.PIPE
    )
    LOGS.lines[process.pid], LOGS.news[process.pid] = [], asyncio.Event()
    LOGS.readers[process.pid] = asyncio.create_task(LOGS.read(process))
    return process


async def start_webhooks(
    config: Path, environment: dict[str, str], *, cwd: Path | None = None, timeout: float = 30
) -> asyncio.subprocess.Process:
    """A `callbridge webhooks` replica from `config`, as a process of its own, once it started."""
    argv = [sys.executable, "-m", "services.cli", "--config", str(config), "webhooks"]
    process = await spawn(argv, environment, cwd)
    await logged(process, b"webhooks started", "a webhooks replica died before it started", timeout=timeout)
    return process


def count(process: asyncio.subprocess.Process, text: bytes) -> int:
    """How many lines of the service's log so far have `text`."""
    return sum(text in line for line in LOGS.lines[process.pid])


async def logged(
    process: asyncio.subprocess.Process,
    text: bytes,
    died: str = "the service died",
    *,
    times: int = 1,
    timeout: float = 30,
) -> None:
    """Wait until the service's log has `times` lines with `text`."""
    news, reader = LOGS.news[process.pid], LOGS.readers[process.pid]
    async with asyncio.timeout(timeout):
        while count(process, text) < times:
            assert not reader.done(), died
            news.clear()
            await news.wait()


async def log_of(process: asyncio.subprocess.Process) -> str:
    """The whole log of a service that has ended."""
    await LOGS.readers[process.pid]
    return b"".join(LOGS.lines[process.pid]).decode()


def children(pid: int) -> list[int]:
    """The processes `pid` started (a conversion pool's workers, for instance)."""
    tasks = Path(f"/proc/{pid}/task").iterdir()
    return [int(child) for task in tasks for child in (task / "children").read_text().split()]
