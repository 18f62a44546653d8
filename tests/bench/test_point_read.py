"""``python -m bench.point_read``: the history read alone, inside a process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from tests.conformance import CAMPAIGN
from tests.conftest import CLI, cli_env


def test_the_point_read_bench_reads_what_the_history_command_prints(tmp_path: Path) -> None:
    events, data, env = tmp_path / "events.ndjson", tmp_path / "data", cli_env()
    events.write_bytes(b"\n".join(CAMPAIGN) + b"\n")
    subprocess.run([*CLI, "--data-dir", str(data), "ingest", str(events)], check=True, env=env)
    actor = orjson.loads(CAMPAIGN[0])["actor"]
    who = f"{actor['kind']}:{actor['value']}"
    history = [*CLI, "--data-dir", str(data), "history", who]
    printed = subprocess.run(history, check=True, env=env, capture_output=True).stdout
    bench = [sys.executable, "-m", "bench.point_read", str(data), who, "--reads", "3"]
    report = orjson.loads(subprocess.run(bench, check=True, env=env, capture_output=True).stdout)
    assert report["events"] == len(printed.splitlines()) > 1
    assert report["first_read_ms"] > 0 and report["read_ms"] > 0 and report["peak_rss_mib"] > 0
