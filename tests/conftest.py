"""Shared fixtures: the command line as a user runs it, and a real headless browser."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, sync_playwright

from crm2stream.synth import Campaign, lines

CLI = [sys.executable, "-m", "crm2stream.cli"]
#: Debian's Chromium (``make test`` installs it), driven by Playwright
CHROMIUM = os.environ.get("CRM2STREAM_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
FLAGS += ["--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield browser
        browser.close()


def cli_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM2STREAM_")}
    env["CRM2STREAM_ID_KEY"] = "test-key"
    env.update({f"CRM2STREAM_{k.upper()}": v for k, v in settings.items()})
    return env


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def crm(tmp_path: Path) -> Run:
    """Run ``crm2stream --data-dir <tmp> ARGS`` and return the completed process."""

    def run(*args: str, data_dir: Path | None = None, stdin: str | None = None, **env: str) -> Any:
        return subprocess.run(
            [*CLI, "--data-dir", str(data_dir or tmp_path / "data"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=cli_env(**env),
            timeout=600,
        )

    return run


@pytest.fixture(scope="session")
def large_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120,000 synthetic events with a bad line every 1,000."""
    path = tmp_path_factory.mktemp("large") / "events.ndjson"
    campaign = Campaign(identifiers=12_000, events=120_000, days=120, seed=5, bad_every=1000)
    with path.open("wb") as out:
        for raw in lines(campaign):
            out.write(raw + b"\n")
    return path
