"""The API refuses what the PBX cannot do, or what is malformed, with a reason, and changes
nothing (on the in-memory bus: the answers do not depend on the broker)."""

import logging

import pytest

from shared.memory_bus import InMemoryBus
from tests.api_stack import API_SETTINGS, KEY, api_stack


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
    ("second", "reason"),
    [
        ("call me", "matches no pattern of [api] dial_allow"),
        ("112", "matches no pattern"),  # emergency
        ("*72420777123456", "matches no pattern"),  # a feature code: forward my phone there
        ("0900123456", "refused by [api] dial_deny"),
        ("+19005551234", "refused by [api] dial_deny"),
    ],
)
async def test_makecall_dials_only_what_the_policy_allows(second: str, reason: str) -> None:
    async with api_stack(InMemoryBus()) as stack:
        response = await stack.get("makecall", first="101", second=second)
        assert response.status_code == 403 and reason in response.json()["error"]
        assert stack.driver.simulator.active_calls == 0  # the monitor was never asked


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


async def test_makecall_is_limited_per_key_and_every_command_leaves_one_audit_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = API_SETTINGS.model_copy(update={"makecall_per_minute": 2})
    caplog.set_level(logging.INFO, logger="callbridge.audit")
    async with api_stack(InMemoryBus(), settings=settings) as stack:
        for _ in range(2):
            assert (await stack.get("makecall", first="101", second="420777123456")).status_code == 200
        limited = await stack.get("makecall", first="101", second="420777123456")
        assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 30
        assert "2 calls in the last minute" in limited.json()["error"]
        other = await stack.get("ext.fwd.set", num="101", status="Away")  # other commands go on
        assert other.status_code == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "callbridge.audit"]
    fingerprint = lines[0].split(" by ")[1].split(" ")[0]
    assert len(lines) == 4 and fingerprint.startswith("key:")
    assert lines[0] == f"makecall first=101 second=420777123456 by {fingerprint} from 127.0.0.1: done, call 1"
    assert lines[2].endswith("refused: this key placed 2 calls in the last minute")
    assert lines[3].startswith(f"forwarding extension=101 profile=Away by {fingerprint}")
    assert all(KEY not in line for line in lines)
