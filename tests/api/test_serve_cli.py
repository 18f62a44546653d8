"""`crm2stream serve` and `crm2stream demo` as a user runs them: a process, a port, a
signal to stop."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.api.conftest import eventually, start
from tests.conformance import CAMPAIGN
from tests.conftest import CLI, Run, cli_env


@contextmanager
def serving(data: Path) -> Iterator[str]:
    """``serve`` on ``data`` (its URL), stopped by SIGTERM at the end."""
    process, url = start("--data-dir", str(data), "serve")
    try:
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        # after a clean shutdown the server ends by the signal it was sent, as is usual
        assert process.wait(timeout=60) == -signal.SIGTERM


def test_serve_stops_on_sigterm_with_everything_written(crm: Run, tmp_path: Path) -> None:
    data = tmp_path / "served"
    with serving(data) as url:
        answer = httpx.post(url + "events", content=b"\n".join(CAMPAIGN), timeout=60).json()
        assert answer["accepted"] == len(CAMPAIGN)
    direct = _ingested_directly(crm, tmp_path)
    assert crm("digest", data_dir=data).stdout == crm("digest", data_dir=direct).stdout
    topics = crm("export", "score-changes", data_dir=data).stdout
    assert topics == crm("export", "score-changes", data_dir=direct).stdout


def test_serve_reads_an_ingested_directory_and_takes_more_events(crm: Run, tmp_path: Path) -> None:
    """The server leaves the facts in the store until events arrive (``defer_load``)."""
    data, first, rest = tmp_path / "served", CAMPAIGN[:1000], CAMPAIGN[1000:]
    (tmp_path / "first.ndjson").write_bytes(b"\n".join(first) + b"\n")
    crm("ingest", str(tmp_path / "first.ndjson"), data_dir=data)
    person = orjson.loads(crm("export", "persons", data_dir=data).stdout.splitlines()[0])
    with serving(data) as url:
        view = eventually(lambda: _ok(httpx.get(url + f"persons/{person['person_id']}")))
        assert view["person_id"] == person["person_id"]
        answer = httpx.post(url + "events", content=b"\n".join(rest), timeout=60).json()
        assert answer["accepted"] == len(rest)
    direct = _ingested_directly(crm, tmp_path)
    assert crm("digest", data_dir=data).stdout == crm("digest", data_dir=direct).stdout


def _ingested_directly(crm: Run, tmp_path: Path) -> Path:
    """A directory the whole campaign was ingested into by the command line."""
    (tmp_path / "events.ndjson").write_bytes(b"\n".join(CAMPAIGN) + b"\n")
    crm("ingest", str(tmp_path / "events.ndjson"), data_dir=tmp_path / "direct")
    return tmp_path / "direct"


def _ok(response: httpx.Response) -> Any:
    return response.json() if response.status_code == 200 else None


def test_serve_refuses_a_data_directory_it_cannot_open(crm: Run, tmp_path: Path) -> None:
    data = tmp_path / "cny"
    (tmp_path / "one.ndjson").write_bytes(CAMPAIGN[0] + b"\n")
    crm("ingest", str(tmp_path / "one.ndjson"), data_dir=data)
    result = subprocess.run(
        [*CLI, "--data-dir", str(data), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=cli_env(currency="USD"),
        timeout=60,
    )
    assert result.returncode == 2
    assert "holds CNY data" in result.stderr


def test_the_demo_plays_and_serves(tmp_path: Path) -> None:
    process, url = start("demo", "--rate", "500", "--events", "3000", "--people", "100")
    try:
        with httpx.Client(base_url=url, timeout=10) as client:
            assert "EventSource" in client.get("/").text

            def log_end() -> int:
                return int({t["name"]: t["end"] for t in client.get("/topics").json()}["events"])

            first = log_end()
            eventually(lambda: log_end() > first or None)  # events keep arriving
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 130


def test_the_demo_stopped_by_sigterm_removes_its_scratch_directory(tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen(
        [*CLI, "demo", "--rate", "500", "--events", "3000", "--people", "100", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**cli_env(), "TMPDIR": str(scratch)},
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            if "serving the API" in line:
                break
        assert [p.name[:16] for p in scratch.iterdir()] == ["crm2stream-demo-"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert list(scratch.iterdir()) == []
