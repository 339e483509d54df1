"""Valid events in one place: make_call_ringing(**overrides) and friends."""

from datetime import UTC, datetime
from typing import Any

from shared.events import CallEnded, CallRinging

AT = datetime(2021, 12, 30, 10, 6, 14, tzinfo=UTC)
_seq = iter(range(1, 10**9))


def _common(overrides: dict[str, Any]) -> dict[str, Any]:
    base = {
        "occurred_at": AT,
        "source": "test/1",
        "seq": next(_seq),
        "chain_id": "211230100614_665",
        "call_number": 665,
        "direction": "inbound",
        "external_number": "420774852629",
        "did_name": "PragueDID",
        "did_number": "+420221000000",
    }
    return base | overrides


def make_call_ringing(**overrides: Any) -> CallRinging:
    return CallRinging(**_common({"link": 0, "extension": "101", "user_type": "queue"} | overrides))


def make_call_ended(**overrides: Any) -> CallEnded:
    return CallEnded(
        **_common(
            {
                "link": 1,
                "extension": "102",
                "answered": True,
                "transferred": False,
                "chain_ended": True,
                "duration": 25.0,
                "routed_type": "extension",
            }
            | overrides
        )
    )
