"""What README says works, as written: its commands, the output it shows, the hints.

The embedded engine's commands of "Using it" are run one after another in a fresh
directory (``events.ndjson`` being the bundled sample campaign); where README shows an
output, the command must print it. The identifiers README and the dashboard offer as
examples of a lookup must exist in the demo campaign.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from crm2stream.demo import Story, campaign
from tests.conftest import cli_env

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
#: README's commands that need a Kafka broker: ``tests/kafka`` runs the distributed engine
BROKER = "--broker"


def shell_blocks(text: str, after: str) -> list[str]:
    """The lines of the ```sh blocks of a section."""
    section = text[text.index(after) :]
    section = section[: section.find("\n## ", 1)]
    return [
        line
        for block in re.findall(r"```sh\n(.*?)```", section, re.S)
        for line in block.splitlines()
    ]


def command_and_outputs(lines: list[str]) -> list[tuple[list[str], list[str]]]:
    """Each command (comment and optional ``[...]`` parts dropped) with the output lines
    README shows after it."""
    steps: list[tuple[list[str], list[str]]] = []
    for line in lines:
        if line.startswith(".venv/bin/crm2stream "):
            text = re.sub(r"\s+#.*$", "", line)
            text = re.sub(r"\s*\[[^]]*\]", "", text)
            steps.append((shlex.split(text), []))
        elif line.strip():
            steps[-1][1].append(line)
    return steps


def matches(shown: str, printed: str) -> bool:
    """A JSON output as README shows it, ``{...}`` standing for any object."""
    pattern = re.escape(shown).replace(re.escape("{...}"), r"\{.*\}")
    return re.fullmatch(pattern, printed) is not None or _same_json(shown, printed)


def _same_json(shown: str, printed: str) -> bool:
    try:
        expected: Any = orjson.loads(shown)
    except orjson.JSONDecodeError:
        return False
    return bool(expected == orjson.loads(printed))


def test_the_commands_of_using_it_work_as_written(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "campaign.ndjson", tmp_path / "events.ndjson")
    cli = str(Path(sys.executable).parent / "crm2stream")
    ran = 0
    for argv, shown in command_and_outputs(shell_blocks(README, "## Using it")):
        if BROKER in argv:
            continue
        done = subprocess.run(
            [cli, *argv[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=600,
        )
        assert done.returncode == 0, (argv, done.stderr)
        printed = done.stdout.strip().splitlines()
        assert printed or argv[1] == "replay", (argv, "printed nothing")
        if shown:
            assert len(printed) == len(shown) and all(
                matches(s, p) for s, p in zip(shown, printed, strict=True)
            ), (argv, shown, printed[:3])
        ran += 1
    assert ran >= 7


def test_the_lookup_hints_name_people_of_the_demo() -> None:
    hints = re.findall(r"`((?:weibo|qq|wechat|member_card|phone):[^`.*]+)`", README)
    dashboard = (ROOT / "crm2stream" / "api" / "dashboard.html").read_text()
    placeholder = re.search(r'id="who" placeholder="([^"]*)"', dashboard)
    assert placeholder is not None
    hints += re.findall(r"(?:weibo|qq|wechat|member_card|phone):[A-Za-z0-9+]+", placeholder[1])
    named = set()
    for event in campaign(Story()):
        for field in ("actor", "link", "content_owner", "reply_to"):
            if field in event:
                named.add(f"{event[field]['kind']}:{event[field]['value']}")
    assert hints and set(hints) <= named, set(hints) - named
