"""``make run``: the bundled sample through the embedded engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env


def test_the_sample_run_prints_the_tables_and_is_repeatable(tmp_path: Path) -> None:
    def run() -> str:
        result = subprocess.run(
            [sys.executable, "-m", "crm2stream.sample", "--data-dir", str(tmp_path / "d")],
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = run()
    assert "'accepted': 3000, 'rejected': 6, 'duplicates': 0" in first
    for heading in ("persons:", "tiers:", "top 10 by composite value", "dead letters: 6"):
        assert heading in first
    second = run()
    assert "'accepted': 0, 'rejected': 6, 'duplicates': 3000" in second
    digest = [line for line in first.splitlines() if line.startswith("digest:")]
    assert digest and digest == [line for line in second.splitlines() if line.startswith("digest:")]
