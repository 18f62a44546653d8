"""A full disk under ``crm2stream serve`` (a tmpfs in a mount namespace of the test's own):
the engine stops and says so everywhere, reports only what is on disk, a restart without
space says why in one line, and once space is freed nothing acknowledged is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).parents[2]


def test_a_full_disk_stops_the_engine_loses_nothing_and_says_so(tmp_path: Path) -> None:
    driver = [sys.executable, "-m", "tests.api.disk_full", str(tmp_path)]
    run = subprocess.run(
        ["unshare", "--mount", "--map-root-user", *driver],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    seen = orjson.loads(run.stdout)
    status, detail = seen["refused"]
    assert status == 503 and "no space left" in detail, detail
    assert seen["acknowledged"] > 0
    status, health = seen["health"]
    assert status == 503 and health["status"] == "stopped" and "no space left" in health["error"]
    assert seen["bare_health"] == {"status": "stopped"}  # no paths for the anonymous
    for path, (status, detail) in seen["reads"].items():
        assert status == 503 and "engine has stopped" in detail, path
    # what it reported as the log end while stopped is exactly what was on disk
    assert health["log_end"] == seen["acknowledged"] == seen["restarted_log_end"]
    code, stderr = seen["full_restart"]
    assert code == 2, stderr
    [message] = stderr.strip().splitlines()  # one clear line, no traceback
    assert message.startswith("crm2stream: error: no space left on the device"), message
    served, direct = seen["digests"]
    assert served == direct  # nothing acknowledged lost, nothing counted twice
