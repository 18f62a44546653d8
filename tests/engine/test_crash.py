"""kill -9 during a large ingest, then the same ingest again: the result of a clean run."""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

from tests.conftest import CLI, Run, cli_env

SETTINGS = {"batch_size": "2000", "checkpoint_events": "15000"}


def test_kill_9_mid_ingest_then_rerun_gives_the_clean_result(
    crm: Run, large_file: Path, tmp_path: Path
) -> None:
    clean_dir, crash_dir = tmp_path / "clean", tmp_path / "crashed"
    started = time.monotonic()
    clean = crm("ingest", str(large_file), data_dir=clean_dir, **SETTINGS)
    duration = time.monotonic() - started
    assert clean.returncode == 0, clean.stderr

    rng = random.Random(2026)
    kills = 0
    # The second run resumes where the first was killed: it is killed again well before
    # the end of what is left (a run that finishes would leave nothing to resume, and the
    # last ingest would then offer the whole file again, as duplicates).
    for fraction in (0.35, 0.3):
        proc = subprocess.Popen(
            [*CLI, "--data-dir", str(crash_dir), "ingest", str(large_file)],
            env=cli_env(**SETTINGS),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(duration * fraction * rng.uniform(0.8, 1.2))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
    assert kills == 2, "an ingest finished before it could be killed"

    finish = crm("ingest", str(large_file), data_dir=crash_dir, **SETTINGS)
    assert finish.returncode == 0, finish.stderr

    def outputs(data_dir: Path) -> tuple[str, str, str]:
        digest = crm("digest", data_dir=data_dir).stdout
        changes = crm("export", "score-changes", data_dir=data_dir).stdout
        dlq = crm("export", "dlq", data_dir=data_dir).stdout
        return digest, changes, dlq

    clean_digest, clean_changes, clean_dlq = outputs(clean_dir)
    digest, changes, dlq = outputs(crash_dir)
    assert digest == clean_digest
    assert len(dlq.splitlines()) == 120 and dlq == clean_dlq
    assert changes == clean_changes


def test_kill_9_mid_replay_then_any_command_finishes_it(
    crm: Run, large_file: Path, tmp_path: Path
) -> None:
    """A replay writes without the write-ahead log: killed, it keeps whole batches up to
    its last flush, and the next open carries the replay on to the same result."""
    data_dir = tmp_path / "data"
    assert crm("ingest", str(large_file), data_dir=data_dir, **SETTINGS).returncode == 0
    clean_digest = crm("digest", data_dir=data_dir).stdout
    clean_changes = crm("export", "score-changes", data_dir=data_dir).stdout
    started = time.monotonic()
    assert crm("replay", data_dir=data_dir, **SETTINGS).returncode == 0
    duration = time.monotonic() - started

    proc = subprocess.Popen(
        [*CLI, "--data-dir", str(data_dir), "replay"],
        env=cli_env(**SETTINGS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(duration * 0.5)
    assert proc.poll() is None, "the replay finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)

    assert crm("digest", data_dir=data_dir).stdout == clean_digest
    assert crm("export", "score-changes", data_dir=data_dir).stdout == clean_changes
