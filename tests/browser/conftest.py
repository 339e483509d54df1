"""Browser tests: Debian's Chromium (never a downloaded browser), driven headless by Playwright;
the stack of `stack.py`; screenshots under test-output/browser/ (ignored by git)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.browser.stack import Stack, running_stack

# Debian's chromium package; $CHROMIUM for another installed one (Ubuntu's chromium-browser)
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
ARGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "browser"
DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
# the elements that stick out of the screen (tables scroll inside their own box instead)
WIDER = """width => [...document.querySelectorAll("body *")]
  .filter(e => e.getBoundingClientRect().right > width + 1 && !e.parentElement.closest(".scroll"))
  .map(e => e.tagName + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : ""))"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does), or set CHROMIUM")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    yield opened
    context.close()


def screenshots(page: Page, name: str) -> list[Path]:
    """The page at desktop and phone width, under test-output/browser/; the desktop Live page
    also to docs/dashboard.png when UPDATE_DOCS_SCREENSHOT=1 (the README's picture)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    written = []
    for size, (width, height) in SIZES.items():
        page.set_viewport_size({"width": width, "height": height})
        path = OUTPUT / f"{name}-{size}.png"
        page.screenshot(path=path, full_page=True)
        wider = page.evaluate(WIDER, width)
        assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name}: {wider}"
        assert not wider, f"{name} at {size} width: wider than the screen: {wider}"
        written.append(path)
    page.set_viewport_size({"width": 1280, "height": 800})
    if name == "live" and os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
        shutil.copyfile(written[0], DOCS_SHOT)
    return written
