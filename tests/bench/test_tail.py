"""``python -m bench.tail`` on a small directory: it applies the batches after the
directory's lines, says where their time went, and publishes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from crm2stream.synth import Campaign, lines
from tests.conftest import CLI, cli_env


def test_the_tail_bench_times_the_batches_after_a_directory_and_its_publication(
    tmp_path: Path,
) -> None:
    events = list(lines(Campaign(identifiers=400, events=6_000, days=30, seed=3)))
    head, tail = tmp_path / "head.ndjson", tmp_path / "tail.ndjson"
    head.write_bytes(b"\n".join(events[:4_000]) + b"\n")
    tail.write_bytes(b"\n".join(events[4_000:]) + b"\n")
    data = tmp_path / "data"
    env = cli_env(id_key="bench")
    ingest = [*CLI, "--data-dir", str(data), "ingest", str(head)]
    subprocess.run(ingest, check=True, env=env, capture_output=True, timeout=300)
    # after an open the bodies are in the store: the batch reads those it needs back
    bench = [sys.executable, "-m", "bench.tail", str(data), str(tail), "--batches", "1"]
    bench += ["--cache-mib", "1", "--count"]
    out = subprocess.run(
        [*bench, "--publish", "--publish-items", "7"],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    batch = re.search(r"^batch 1: [\d.]+ s \((.*)\), RSS [\d,]+ MiB, ([\d,]+) read$", out, re.M)
    assert batch is not None, out
    assert {p.rsplit(" ", 1)[0] for p in batch.group(1).split(", ")} == {
        "applying",
        "score changes",
        "store writes",
    }
    spent = re.search(r"^batches ([\d.]+) s: (.*)$", out, re.M)
    assert spent is not None, out
    parts = dict(part.rsplit(" ", 2)[:2] for part in spent.group(2).split(", "))
    assert set(parts) == {"applying", "score changes", "store writes"}, parts
    assert sum(float(s) for s in parts.values()) <= float(spent.group(1)) + 0.01
    cpu = re.search(r"^CPU over the batches, every thread: ([\d.]+) s$", out, re.M)
    assert cpu is not None and float(cpu[1]) > 0, out
    reads = re.search(
        r"^bodies read from the store: applying ([\d,]+), score changes ([\d,]+)$", out, re.M
    )
    assert reads is not None, out
    assert all(int(n.replace(",", "")) > 0 for n in reads.groups()), out
    # one batch: it read them all
    assert sum(int(n.replace(",", "")) for n in reads.groups()) == int(batch[2].replace(",", ""))
    footprint = re.findall(r"^  ([a-z ]+): [\d,]+ entries, [\d,]+ MiB$", out, re.M)
    assert "identifiers" in footprint, out
    held = re.search(r"^the core held at most, above a phase's start: (.*)$", out, re.M)
    assert held is not None, out
    assert {part.split(" ")[0] for part in held.group(1).split(", ")} >= {"applying", "score"}
    published = r"^publication [\d.]+ s: RSS at most [\d,]+ MiB.*; writes of 7 persons$"
    assert re.search(published, out, re.M), out
    # what the tail applied is in the directory: its events are accepted once
    again = subprocess.run(
        [*CLI, "--data-dir", str(data), "ingest", str(tail)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    assert '"accepted":0' in again and '"duplicates":2000' in again, again
