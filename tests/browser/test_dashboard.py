"""The dashboard in a real headless Chromium (Debian's), while the demo campaign plays."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from crm2stream.demo import Story, play
from tests.api.conftest import Server, start_server
from tests.browser.dashboard import open_dashboard, open_first_person


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Server]:
    player = partial(play, story=Story(people=150, events=30_000), rate=150.0)
    server, stop = start_server(tmp_path / "data", background=[player])
    yield server
    stop()


def text(page: Page, selector: str) -> str:
    return page.locator(selector).inner_text()


def test_the_dashboard_follows_the_demo_live(
    browser: Browser, demo: Server, tmp_path: Path
) -> None:
    page, problems = open_dashboard(browser, demo.url)
    rows = page.locator("#leaderboard tbody tr")
    rows.first.wait_for(timeout=30_000)
    board = text(page, "#leaderboard tbody")
    page.wait_for_function(
        "before => document.querySelector('#leaderboard tbody').innerText !== before",
        arg=board,
        timeout=30_000,
    )
    # the feed keeps its newest 50 items, so a new one shows as a new first item, not as
    # a longer list
    page.evaluate("window.seen = document.querySelector('#changes li')")
    page.wait_for_function("document.querySelector('#changes li') !== window.seen", timeout=30_000)
    page.wait_for_function("Number(document.querySelector('#rate').innerText) > 0", timeout=30_000)
    assert "bronze" in (page.locator("#tiers").text_content() or "")
    assert page.locator("#status").inner_text() == "live"

    person = open_first_person(page)
    assert page.input_value("#who") == person
    view = text(page, "#scv")
    for label in ("identifiers", "value", "consent", "last events"):
        assert label in view

    second = page.locator("#leaderboard tbody tr").nth(1).locator("td")
    person_id, label = second.nth(1).inner_text(), second.nth(2).inner_text()
    assert "****" in label  # the leaderboard names nobody by a raw identifier
    page.fill("#who", person_id)
    page.click("#lookup button")
    page.wait_for_function(
        "person => document.querySelector('#scv')?.innerText.includes(person)", arg=person_id
    )
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
    assert problems == []
