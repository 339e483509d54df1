"""The delivery store: per-chain blocks and held deliveries, the attempt log, dead letters,
disabled endpoints; on a file, so that what one opening wrote the next one reads."""

from pathlib import Path

from services.webhooks.store import RESPONSE_LIMIT, Attempt, DeliveryStore


def attempt(at: float, endpoint: str = "crm", status: int | None = 200, response: str = "ok") -> Attempt:
    return Attempt(
        at, endpoint, f"e{at:g}", "call.ringing", "chain-1", 1, status, "Delivered", 12.5, response
    )


def test_a_block_holds_deliveries_in_arrival_order_until_released(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "w.db")
    assert store.blocker("crm|chain-1") is None
    store.block("crm|chain-1", "crm/e1", due=100.0)
    for job in ("j2", "j3"):
        store.hold("crm|chain-1", job)
    assert store.blocker("crm|chain-1") == "crm/e1" and store.blocker("crm|chain-2") is None
    first = store.next_held("crm|chain-1")
    assert first is not None and first[1] == "j2"
    store.forget_held(first[0])
    assert (store.next_held("crm|chain-1") or (0, ""))[1] == "j3"
    assert store.overdue(before=99.0) == [] and store.overdue(before=101.0) == [("crm|chain-1", "crm/e1")]
    store.unblock("crm|chain-1")
    assert store.blocker("crm|chain-1") is None


def test_the_attempt_log_lists_newest_first_filters_and_prunes(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "w.db")
    for at in (1.0, 2.0, 3.0):
        store.log_attempt(attempt(at, endpoint="crm" if at != 2.0 else "chat"))
    store.log_attempt(attempt(4.0, status=None, response="x" * (RESPONSE_LIMIT + 100)))
    assert [a.at for a in store.attempts()] == [4.0, 3.0, 2.0, 1.0]
    assert [a.at for a in store.attempts(endpoint="chat")] == [2.0]
    assert [a.at for a in store.attempts(since=3.0, limit=1)] == [4.0]
    assert len(store.attempts()[0].response) == RESPONSE_LIMIT and store.attempts()[0].status is None
    assert store.prune_attempts(before=2.5) == 2
    assert [a.at for a in store.attempts()] == [4.0, 3.0]


def test_dead_letters_are_kept_across_openings_until_replayed(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "w.db")
    store.bury(10.0, "crm", "{job 1}", "call.ended", "chain-1", "gave up after 8 attempts")
    store.bury(20.0, "chat", "{job 2}", "call.ringing", "chain-2", "410 Gone")
    store.close()
    again = DeliveryStore(tmp_path / "w.db")
    assert [(d.endpoint, d.reason) for d in again.dead()] == [
        ("crm", "gave up after 8 attempts"),
        ("chat", "410 Gone"),
    ]
    assert [d.job for d in again.dead(endpoint="chat")] == ["{job 2}"]
    assert [d.job for d in again.dead(since=15.0)] == ["{job 2}"]
    again.mark_replayed(again.dead()[0].id, 30.0)
    assert [d.job for d in again.dead()] == ["{job 2}"]


def test_an_endpoint_is_disabled_until_enabled(tmp_path: Path) -> None:
    store = DeliveryStore(tmp_path / "w.db")
    store.disable(5.0, "crm", "410 Gone")
    assert store.disabled() == {"crm": "410 Gone"}
    store.enable("crm")
    assert store.disabled() == {}
