"""A real server for the API tests: uvicorn on 127.0.0.1 (a free port), the embedded engine
on a temporary data directory, and a real HTTP client."""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from crm2stream.api.hub import EngineHost
from crm2stream.api.server import bound_url, build
from crm2stream.settings import Settings
from tests.conftest import CLI, cli_env
from tests.events import lines, permission, purchase

T = TypeVar("T")

DAY1, DAY2 = "2026-11-01T10:00:00Z", "2026-11-02T10:00:00Z"
#: Two people who allow marketing (qq:fan on WeChat, qq:loyal by SMS) and buy on day 1.
CONSENTING_BUYERS = lines(
    [
        permission("g1", DAY1, "qq:fan", channel="wechat"),
        permission("g2", DAY1, "qq:loyal", channel="sms"),
        purchase("p1", DAY1, "qq:fan", "300"),
        purchase("p2", DAY1, "qq:loyal", "300"),
    ]
)


@dataclass
class Server:
    url: str
    client: httpx.Client
    app: Any = None

    def post_events(self, lines: list[bytes], **headers: str) -> httpx.Response:
        headers.setdefault("content-type", "application/x-ndjson")
        return self.client.post("/events", content=b"\n".join(lines), headers=headers)


def start_server(
    data_dir: Path,
    background: Sequence[Callable[[EngineHost], Awaitable[None]]] = (),
    **settings: Any,
) -> tuple[Server, Callable[[], None]]:
    """Serve a data directory (running ``background`` tasks, a demo's player); returns the
    server and a function that stops it."""
    settings.setdefault("id_key", "test-key")
    settings.setdefault("publish_seconds", 0.2)
    config = Settings(**settings)
    _, server = build(config, data_dir, background)
    server.config.host, server.config.port = "127.0.0.1", 0
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    url = bound_url(server)
    if url is None:
        raise RuntimeError("the server did not start")
    token = settings.get("api_token")
    headers = {"authorization": f"Bearer {token}"} if token else {}
    client = httpx.Client(base_url=url, timeout=30, headers=headers)

    def stop() -> None:
        client.close()
        server.should_exit = True
        thread.join(timeout=30)
        assert not thread.is_alive(), "the server did not stop"

    return Server(url, client, server.config.app), stop


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Server]:
    server, stop = start_server(tmp_path / "data")
    yield server
    stop()


def eventually(probe: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Poll until ``probe`` answers something (the read model follows the topics, so
    what was just ingested shows up a moment later)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = probe()
        if answer is not None:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"nothing after {timeout} s")
        time.sleep(0.05)


def start(*args: str, **settings: str) -> tuple[subprocess.Popen[str], str]:
    """Start the command; wait for the line announcing its URL."""
    process = subprocess.Popen(
        [*CLI, *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(**settings),
    )
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
        if found:
            return process, found.group(1)
    raise AssertionError(f"no URL announced; exit {process.wait()}")
