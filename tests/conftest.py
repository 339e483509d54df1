"""Shared fixtures: the contracts folder, a recorder that waits for events without sleeping."""

import asyncio
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shared.events import Message

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


class Recorder:
    """A bus handler that remembers events; `wait_for(n)` returns once n have arrived."""

    def __init__(self) -> None:
        self.events: list[Message] = []
        self._arrived = asyncio.Condition()

    async def __call__(self, event: Message) -> None:
        async with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Message]:
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.events) >= count)
        return self.events

    async def first(self, wanted: Callable[[Message], bool], timeout: float = 10.0) -> Message:
        """The first event (arrived already, or yet to come) that `wanted` accepts."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: any(map(wanted, self.events)))
        return next(e for e in self.events if wanted(e))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="session")
def contracts() -> Path:
    """../shared beside the checkout: the spec, the example scenarios and check.py."""
    if not (SHARED / "scenarios" / "check.py").exists():
        pytest.fail(f"the contracts folder {SHARED} is missing: it must lie beside the checkout")
    return SHARED


def expected_webhooks(name: str, *, recordings: bool = True) -> list[str]:
    """An example's expected webhooks; without `recordings`, only its call events (for tests
    that run no recordings service)."""
    lines = [
        line for line in (SHARED / "scenarios" / f"{name}.expected.jsonl").read_text().splitlines() if line
    ]
    return lines if recordings else [line for line in lines if "FILES" not in json.loads(line)]


def check_webhooks(name: str, actual: list[str], scratch: Path, *, recordings: bool = True) -> str:
    """Run the contract's check.py on `actual` JSON lines; return its complaint, or "" on a match."""
    expected, got = scratch / f"{name}.expected.jsonl", scratch / f"{name}.actual.jsonl"
    expected.write_text("\n".join(expected_webhooks(name, recordings=recordings)) + "\n")
    got.write_text("".join(line + "\n" for line in actual))
    check = [sys.executable, str(SHARED / "scenarios" / "check.py"), str(expected), str(got)]
    result = subprocess.run(check, capture_output=True, text=True, check=False)
    return "" if result.returncode == 0 else result.stdout


# --- the compose tests (tests/compose/): run where a Docker engine answers, else deselected ------

DOCKER_NOTICE = pytest.StashKey[str]()


def _no_docker_engine() -> str | None:
    """None when a Docker engine answers; otherwise why not."""
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client"
    try:
        info = subprocess.run(
            [docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=30
        )
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 30 s"
    if info.returncode == 0:
        return None
    lines = (info.stderr or info.stdout).strip().splitlines()
    return lines[-1] if lines else f"docker info exited with {info.returncode}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    compose = [item for item in items if item.get_closest_marker("docker")]
    if not compose or (why := _no_docker_engine()) is None:
        return
    config.hook.pytest_deselected(items=compose)
    items[:] = [item for item in items if not item.get_closest_marker("docker")]
    config.stash[DOCKER_NOTICE] = (
        f"{len(compose)} compose test(s) deselected, not run: no Docker engine here ({why}); "
        "they bring docker-compose.yml up wherever one runs"
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    notice = config.stash.get(DOCKER_NOTICE, None)
    if notice:
        terminalreporter.write_sep("=", notice, yellow=True, bold=True)
