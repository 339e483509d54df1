"""The socket's notices: their GETs run together, what they found is handed on in the notices'
order, the same participant is fetched one GET after the other, and a failed GET fails the turn."""

import asyncio
from typing import Any

import pytest

from services.monitor.threecx.client import PbxError
from services.monitor.threecx.notices import IN_FLIGHT, Notices


class Pbx:
    """GETs that answer when the test says so."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, int]] = []
        self.answers: dict[tuple[str, int], list[asyncio.Future[Any]]] = {}
        self.changed = asyncio.Event()

    async def fetch(self, dn: str, number: int) -> Any:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.asked.append((dn, number))
        self.answers.setdefault((dn, number), []).append(answer)
        self.changed.set()
        return await answer

    async def until_asked(self, count: int) -> None:
        while len(self.asked) < count:
            self.changed.clear()
            await self.changed.wait()


class Handled:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.finished: list[bool] = []

    def upsert(self, dn: str, found: Any) -> None:
        self.seen.append((dn, found))

    def remove(self, dn: str, number: int) -> None:
        self.seen.append((dn, f"removed {number}"))

    def done(self, handled: bool) -> None:
        self.finished.append(handled)


def started(window: int = IN_FLIGHT) -> tuple[Pbx, Handled, Notices, "asyncio.Task[None]"]:
    pbx, handled = Pbx(), Handled()
    notices = Notices(pbx.fetch, window)
    return (
        pbx,
        handled,
        notices,
        asyncio.create_task(notices.handle(handled.upsert, handled.remove, handled.done)),
    )


async def test_what_the_gets_found_is_handed_on_in_the_order_of_the_notices() -> None:
    pbx, handled, notices, handling = started()
    await notices.put("101", 1, removed=False)
    await notices.put("102", 2, removed=False)
    await notices.put("103", 3, removed=True)
    await notices.put("104", 4, removed=False)
    await pbx.until_asked(3)
    assert pbx.asked == [("101", 1), ("102", 2), ("104", 4)]  # all three at once
    pbx.answers["104", 4][0].set_result(None)  # gone before it was asked for
    pbx.answers["102", 2][0].set_result("102 ringing")
    pbx.answers["101", 1][0].set_result("101 talking")
    await notices.end()
    await handling
    assert handled.seen == [
        ("101", "101 talking"),
        ("102", "102 ringing"),
        ("103", "removed 3"),
        ("104", "removed 4"),
    ]
    assert handled.finished == [True] * 4


async def test_the_same_participant_is_fetched_one_get_after_the_other() -> None:
    pbx, handled, notices, handling = started()
    await notices.put("101", 1, removed=False)
    await notices.put("101", 1, removed=False)
    await notices.put("102", 2, removed=False)
    await pbx.until_asked(2)
    assert pbx.asked == [("101", 1), ("102", 2)]  # the second GET of 101 waits for the first
    pbx.answers["101", 1][0].set_result("ringing")
    await pbx.until_asked(3)
    pbx.answers["101", 1][1].set_result("talking")
    pbx.answers["102", 2][0].set_result("ringing")
    await notices.end()
    await handling
    assert handled.seen == [("101", "ringing"), ("101", "talking"), ("102", "ringing")]


async def test_a_failed_get_fails_the_turn_and_the_notices_behind_it_are_dropped() -> None:
    pbx, handled, notices, handling = started(window=4)
    for number in (1, 2, 3):
        await notices.put("101", number, removed=False)
    await pbx.until_asked(3)
    pbx.answers["101", 1][0].set_exception(PbxError("3CX answered 500"))
    with pytest.raises(PbxError, match="500"):
        await handling
    assert notices.close() == 2 and handled.finished == [False] and handled.seen == []
    assert all(answer.cancelled() for key in (("101", 2), ("101", 3)) for answer in pbx.answers[key])
