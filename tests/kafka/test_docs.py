"""README's commands against a real broker, as written (``tests/test_docs.py`` runs the
embedded ones): the broker's address put in for README's, in a namespace of their own."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import cli_env
from tests.kafka.broker import Broker
from tests.test_docs import BROKER, README, ROOT, command_and_outputs, matches, shell_blocks

NAMESPACE = "docs"


def test_the_broker_commands_of_using_it_work_as_written(kafka: Broker, tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "campaign.ndjson", tmp_path / "events.ndjson")
    cli = str(Path(sys.executable).parent / "crm2stream")
    ran = 0
    for argv, shown in command_and_outputs(shell_blocks(README, "## Using it")):
        if BROKER not in argv:
            continue
        argv = [kafka.url if a == "kafka://127.0.0.1:9092" else a for a in argv]
        done = subprocess.run(
            [cli, *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=cli_env(namespace=NAMESPACE),
            timeout=600,
        )
        assert done.returncode == 0, (argv, done.stderr)
        printed = done.stdout.strip().splitlines()
        # the namespace prefixes every topic README names
        shown = [line.replace('"crm2stream.', f'"{NAMESPACE}.crm2stream.') for line in shown]
        if shown:
            assert len(printed) == len(shown) and all(
                matches(s, p) for s, p in zip(shown, printed, strict=True)
            ), (argv, shown, printed)
        ran += 1
    assert ran == 2  # topology apply, produce
