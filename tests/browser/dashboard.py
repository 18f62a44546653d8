"""The dashboard as the browser tests drive it, over either engine."""

from __future__ import annotations

from playwright.sync_api import Browser, ConsoleMessage, Page


def open_dashboard(browser: Browser, url: str) -> tuple[Page, list[str]]:
    """A page on the dashboard, and the page errors and console errors it will have."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text}")

    page.on("console", on_console)
    page.goto(url)
    return page, problems


def open_first_person(page: Page) -> str:
    """Click the leaderboard's first row; the person it named, once its view shows.

    The leaderboard re-renders as events arrive, so the row is read and clicked in one
    script turn: the person clicked is the person named, whatever renders next."""
    person: str = page.evaluate(
        """() => {
            const row = document.querySelector('#leaderboard tbody tr');
            row.click();
            return row.dataset.person;
        }"""
    )
    page.wait_for_function(
        "person => document.querySelector('#scv')?.innerText.includes(person)",
        arg=person,
        timeout=10_000,
    )
    return person
