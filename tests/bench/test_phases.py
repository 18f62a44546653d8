"""``python -m bench.phases`` on a small file: it ingests as the command does and says
how long each phase took and the most RSS sampled in it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from crm2stream.synth import Campaign, lines
from tests.conftest import CLI, cli_env


def test_the_phases_bench_ingests_as_the_command_does_and_times_each_phase(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(lines(Campaign(identifiers=300, events=3_000, days=20))) + b"\n")
    env = cli_env(id_key="bench")
    bench = [sys.executable, "-m", "bench.phases", str(tmp_path / "bench"), str(events)]
    out = subprocess.run(bench, check=True, env=env, capture_output=True, text=True, timeout=300)
    total = re.search(r"^ingest ([\d.]+) s, exit 0; RSS at most ([\d,]+) MiB$", out.stdout, re.M)
    assert total is not None, out.stdout
    phases = {
        m["name"]: (float(m["seconds"]), int(m["calls"] or 0), int(m["rss"].replace(",", "")))
        for m in re.finditer(
            r"^(?P<name>[a-z ]+): (?P<seconds>[\d.]+) s(?: in (?P<calls>\d+) call\(s\))?, "
            r"RSS at most (?P<rss>[\d,]+) MiB$",
            out.stdout,
            re.M,
        )
    }
    assert set(phases) == {"open", "batches", "checkpoint", "publication", "topic compaction"}
    # one open; the command's ingest publishes once, at its end, inside its last checkpoint
    assert (phases["open"][1], phases["publication"][1]) == (1, 1), phases
    assert phases["checkpoint"][1] >= 1, phases
    # the phases' own times add up to the whole (each printed to 0.005 s), and the sampler
    # saw the process
    assert abs(sum(s for s, _, _ in phases.values()) - float(total[1])) <= 0.031, phases
    assert phases["batches"][2] > 0
    assert max(rss for _, _, rss in phases.values()) == int(total[2].replace(",", ""))
    # the directory is the command's: it reads back as an ingested one
    digest = [*CLI, "--data-dir", str(tmp_path / "bench"), "digest"]
    assert subprocess.run(digest, check=True, env=env, capture_output=True, timeout=300).stdout


def test_the_phases_bench_replays_in_place_with_its_digest_a_phase_of_its_own(
    tmp_path: Path,
) -> None:
    events = tmp_path / "events.ndjson"
    events.write_bytes(b"\n".join(lines(Campaign(identifiers=300, events=3_000, days=20))) + b"\n")
    env, data = cli_env(id_key="bench"), str(tmp_path / "bench")
    subprocess.run([*CLI, "--data-dir", data, "ingest", str(events)], check=True, env=env)
    digest = subprocess.run(
        [*CLI, "--data-dir", data, "digest"], check=True, env=env, capture_output=True, text=True
    ).stdout
    bench = [sys.executable, "-m", "bench.phases", data, "--replay"]
    out = subprocess.run(bench, check=True, env=env, capture_output=True, text=True, timeout=300)
    assert out.stdout.startswith(digest)  # what the command prints, first
    assert re.search(r"^replay [\d.]+ s, exit 0; RSS at most [\d,]+ MiB$", out.stdout, re.M)
    digest_phase = r"^digest: [\d.]+ s in 1 call\(s\), RSS at most [\d,]+ MiB$"
    assert re.search(digest_phase, out.stdout, re.M), out.stdout
    assert re.search(r"^publication: [\d.]+ s in 1 call\(s\)", out.stdout, re.M), out.stdout
