"""Services stop at a signal: through the loop's handlers, or plain ones where the loop has none."""

import asyncio
import os
import signal

import pytest

from shared.lifecycle import wait_for_shutdown


async def _stops_at(sig: signal.Signals) -> None:
    waiting = asyncio.create_task(wait_for_shutdown())
    await asyncio.sleep(0)  # let it install its handlers
    assert not waiting.done()
    os.kill(os.getpid(), sig)
    await asyncio.wait_for(waiting, 5)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_ends_the_wait(sig: signal.Signals) -> None:
    await _stops_at(sig)


async def test_without_loop_signal_handlers_as_on_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()

    def unsupported(*_: object) -> None:
        raise NotImplementedError  # what asyncio's Windows loop does

    monkeypatch.setattr(loop, "add_signal_handler", unsupported)
    before = signal.getsignal(signal.SIGINT)
    await _stops_at(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) == before  # the handler given back
