"""The compiled core's allocation count, what the bench reads to tell the core's memory
from the rest of a process's: off unless asked for when the module loads, and then the
bytes the core holds and the most it held."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
from crm2stream import _native
from crm2stream.engine.core import Core
from tests.harness import CFG
from crm2stream.synth import Campaign, lines

_native.allocated()
core = Core(CFG)
core.process(b"\\n".join(lines(Campaign(identifiers=200, events=2000, days=30, seed=5))), 0)
held, peak = _native.allocated()
del core
after, _ = _native.allocated()
print(held, peak, after)
"""


def test_counting_is_off_unless_asked_for() -> None:
    env = {k: v for k, v in os.environ.items() if k != "CRM2STREAM_COUNT_ALLOCATIONS"}
    probe = "from crm2stream import _native; print(_native.allocated())"
    for setting in ({}, {"CRM2STREAM_COUNT_ALLOCATIONS": "0"}):
        out = subprocess.run(
            [sys.executable, "-c", probe], env={**env, **setting}, capture_output=True, text=True
        )
        assert out.stdout.strip() == "None", (setting, out.stdout, out.stderr)


def test_counted_bytes_are_what_a_core_holds_and_gives_back() -> None:
    env = {**os.environ, "CRM2STREAM_COUNT_ALLOCATIONS": "1"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout
    held, peak, after = map(int, out.split())
    assert held > 100_000, "a core with 2,000 events holds its facts"
    assert peak >= held
    assert after < held // 10, "dropping the core gives its memory back"
