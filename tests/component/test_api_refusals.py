"""The API refuses what the PBX cannot do, or what is malformed, with a reason, and changes
nothing (on the in-memory bus: the answers do not depend on the broker)."""

import pytest

from shared.memory_bus import InMemoryBus
from tests.api_stack import api_stack


@pytest.mark.parametrize(
    ("method", "params", "status", "reason"),
    [
        ("ext.fwd.set", {"num": "999", "status": "Away"}, 404, "extension 999 does not exist"),
        ("ext.fwd.set", {"num": "101", "status": "Holiday"}, 400, "unknown status 'Holiday'"),
        ("ext.queue.set", {"num": "101", "queue": "899", "log": "on"}, 404, "queue 899 does not exist"),
        (
            "ext.queue.set",
            {"num": "103", "queue": "800", "log": "on"},
            400,
            "103 is not an agent of queue 800",
        ),
        ("makecall", {"first": "999", "second": "101"}, 404, "extension 999 does not exist"),
        ("makecall", {"first": "101", "second": "800"}, 400, "800 is not an extension"),
        ("makecall", {"first": "101", "second": "call me"}, 400, "is not a phone number"),
        ("makecall", {"first": "105", "second": "101"}, 409, "105 is not registered"),
    ],
)
async def test_a_command_that_cannot_be_done_says_why_and_changes_nothing(
    method: str, params: dict[str, str], status: int, reason: str
) -> None:
    async with api_stack(InMemoryBus(), "- {t: 0, do: unregister, dn: '105'}") as stack:
        await stack.until(lambda e: e.type == "extension.registration")
        seq = stack.api.cache.seq
        response = await stack.get(method, **params)
        assert response.status_code == status
        assert response.json()["result"] == "failure" and reason in response.json()["reason"]
        assert stack.api.cache.seq == seq and stack.driver.simulator.active_calls == 0


@pytest.mark.parametrize(
    ("method", "params", "complaint"),
    [
        ("ext.queueglobal.set", {"num": "101", "log": "maybe"}, "log"),
        ("ext.options.set", {"num": "101"}, "at least one of enabled, external, recording"),
        ("ext.options.set", {"num": "101", "recording": "sometimes"}, "recording"),
        ("ext.state.get", {}, "num"),
        ("makecall", {"first": "101"}, "second"),
    ],
)
async def test_a_malformed_request_is_a_422_with_a_message(
    method: str, params: dict[str, str], complaint: str
) -> None:
    async with api_stack(InMemoryBus()) as stack:
        response = await stack.get(method, **params)
        assert response.status_code == 422 and complaint in response.json()["error"]
