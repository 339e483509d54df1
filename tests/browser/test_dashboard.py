"""The dashboard in Debian's Chromium: log in, a scenario's ringing call on the Live page within
2 s, a read-only key without replay controls, a dead letter replayed and delivered, a recording
played in the page; a screenshot of each page at desktop and phone width."""

import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import screenshots
from tests.browser.stack import CALLER, KEY, READ_ONLY_KEY, RINGS_AT, Stack

pytestmark = pytest.mark.browser


def log_in(page: Page, stack: Stack, key: str) -> None:
    page.goto(f"{stack.api}/ui/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("navigation", name="Pages")).to_be_visible()
    assert key not in page.url


def test_log_in_and_a_ringing_call_appears_within_2_s(page: Page, stack: Stack) -> None:
    log_in(page, stack, KEY)
    expect(page.locator("#rights")).to_have_text("full access")
    arrives = stack.started + RINGS_AT
    row = page.locator("#calls-table tbody tr", has_text=CALLER)
    row.wait_for(timeout=max(arrives + 2 - time.time(), 0.1) * 1000)
    assert time.time() - arrives < 2
    expect(row).to_contain_text("Sales (800)")  # it waits in the queue, then rings 101 and 102
    expect(page.locator("#live-summary")).to_contain_text("call in progress")
    screenshots(page, "live")


def dead_letters_listed(page: Page) -> None:
    """Read the Deliveries page again until the failed ringing webhook is a dead letter."""
    page.goto(page.url.split("#")[0] + "#deliveries")
    for _ in range(40):
        if page.locator("#dead-table tbody tr", has_text="call.ringing").count():
            return
        page.get_by_role("button", name="Filter").click()
        page.wait_for_timeout(250)
    raise AssertionError("no dead letter listed")


def test_a_read_only_key_sees_no_replay_button(page: Page, stack: Stack) -> None:
    log_in(page, stack, READ_ONLY_KEY)
    expect(page.locator("#rights")).to_have_text("read-only")
    dead_letters_listed(page)
    expect(page.locator("#endpoints-table tbody")).to_contain_text("crm")
    assert page.get_by_role("button", name="Replay").count() == 0
    assert page.get_by_role("button", name="Replay all listed").is_hidden()
    refused = page.request.post(
        f"{stack.api}/ui/api/webhooks/dead/replay", headers={"X-API-Key": READ_ONLY_KEY}
    )
    assert refused.status == 403  # and the server refuses anyway


def test_a_dead_letter_is_replayed_and_shows_delivered(page: Page, stack: Stack) -> None:
    log_in(page, stack, KEY)
    dead_letters_listed(page)
    screenshots(page, "deliveries")
    dead = page.locator("#dead-table tbody tr", has_text="call.ringing").first
    chain = dead.locator("td").nth(3).inner_text()
    filters = page.locator("#attempt-filters")
    filters.get_by_label("Chain id").fill(chain)
    filters.get_by_label("Outcome").select_option("Delivered")
    page.get_by_role("button", name="Filter").click()
    delivered = page.locator("#attempts-table tbody tr[data-outcome=Delivered]", has_text="call.ringing")
    before = delivered.count()
    page.get_by_role("button", name=f"Replay call.ringing of {chain}").click()
    expect(page.locator("#deliveries-status")).to_contain_text("Replayed")
    for _ in range(40):
        if delivered.count() > before:
            break
        page.get_by_role("button", name="Filter").click()
        page.wait_for_timeout(250)
    assert delivered.count() == before + 1
    expect(page.locator("#dead-table tbody")).to_contain_text("No dead letters")
    delivered.first.get_by_role("button").click()
    expect(page.locator("#attempt-detail pre")).to_contain_text("200 Delivered")


def test_a_recording_plays_in_the_page(page: Page, stack: Stack) -> None:
    log_in(page, stack, KEY)
    page.goto(f"{stack.api}/ui/#calls")
    page.locator("#chain-filters").get_by_label("Caller").fill(CALLER[-6:])
    audio = page.locator("#chains-list audio").first
    for _ in range(100):  # the call ends 11 s in; its recording is converted a few seconds later
        page.get_by_role("button", name="Search").click()
        page.wait_for_timeout(300)
        if audio.count():
            break
    expect(audio).to_be_attached()
    page.wait_for_function("document.querySelector('#chains-list audio').duration > 0", timeout=10_000)
    assert page.get_by_role("link", name="Download recording 1").first.get_attribute("href", timeout=1000)
    page.get_by_role("button", name="Webhooks of").first.click()
    expect(page.locator("#chains-list")).to_contain_text("Delivered")
    screenshots(page, "calls")
