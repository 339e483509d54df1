"""Shared fixtures: the contracts folder, a recorder that waits for events without sleeping."""

import asyncio
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


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="session")
def contracts() -> Path:
    """../shared beside the checkout: the spec, the example scenarios and check.py."""
    if not (SHARED / "scenarios" / "check.py").exists():
        pytest.fail(f"the contracts folder {SHARED} is missing: it must lie beside the checkout")
    return SHARED
