"""The command line as documented: outputs, exit codes, messages."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from crm2stream.synth import BAD_LINES
from tests.conformance import CAMPAIGN
from tests.conftest import Run


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_ingest_prints_one_json_line_and_rejections_are_not_failures(
    crm: Run, tmp_path: Path
) -> None:
    events = write(tmp_path / "e.ndjson", [*CAMPAIGN[:300], *BAD_LINES, b"", CAMPAIGN[0]])
    result = crm("ingest", str(events))
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == {
        "accepted": 300,
        "rejected": len(BAD_LINES),
        "duplicates": 1,
    }
    assert result.stdout.count("\n") == 1


def test_ingest_from_stdin(crm: Run) -> None:
    text = b"\n".join(CAMPAIGN[:20]).decode()
    result = crm("ingest", "-", stdin=text)
    assert orjson.loads(result.stdout)["accepted"] == 20


def test_a_missing_file_is_a_clear_error(crm: Run, tmp_path: Path) -> None:
    good = write(tmp_path / "e.ndjson", CAMPAIGN[:5])
    result = crm("ingest", str(good), str(tmp_path / "nope.ndjson"))
    assert result.returncode == 2
    assert "nope.ndjson" in result.stderr and "no such file" in result.stderr
    assert crm("digest").stdout.strip() == crm("digest", data_dir=tmp_path / "empty").stdout.strip()


def test_a_checkpoint_record_it_cannot_read_is_a_clear_error(crm: Run, tmp_path: Path) -> None:
    from crm2stream.engine.keyspace import BODIES
    from crm2stream.engine.store import Store

    crm("ingest", str(write(tmp_path / "e.ndjson", CAMPAIGN[:200])))
    store = Store(tmp_path / "data")
    key = next(k for k, _ in store.db.items(from_key=BODIES) if k.startswith(BODIES))
    store.db[key] = bytes([99]) + b"a body of a format to come"
    store.close()
    result = crm("digest")
    assert result.returncode == 2
    assert "corrupt checkpoint record" in result.stderr and "not in this version's" in result.stderr
    assert "crm2stream replay" in result.stderr and "Traceback" not in result.stderr
    replayed = crm("replay")
    assert replayed.returncode == 0, replayed.stderr
    assert crm("digest").stdout == replayed.stdout


def test_bad_options_are_refused(crm: Run) -> None:
    assert crm("export", "people").returncode == 2
    assert crm("frobnicate").returncode == 2
    result = crm("export", "scores", "--as-of", "last tuesday")
    assert result.returncode == 2 and "--as-of" in result.stderr
    result = crm("digest", currency="euro")
    assert result.returncode == 2 and "CURRENCY" in result.stderr


def test_export_is_sorted_ndjson_and_travels_in_time(crm: Run, tmp_path: Path) -> None:
    crm("ingest", str(write(tmp_path / "e.ndjson", CAMPAIGN)))
    rows = [orjson.loads(r) for r in crm("export", "scores").stdout.splitlines()]
    ids = [r["person_id"] for r in rows]
    assert ids == sorted(ids) and len(rows) > 100
    early = crm("export", "persons", "--as-of", "2026-08-03").stdout.splitlines()
    assert 0 < len(early) < len(crm("export", "persons").stdout.splitlines())
    same_day = crm("digest", "--as-of", "2026-08-03T23:00:00+08:00").stdout
    assert same_day == crm("digest", "--as-of", "2026-08-03").stdout


def test_history_by_identifier_or_person_id(crm: Run, tmp_path: Path) -> None:
    crm("ingest", str(write(tmp_path / "e.ndjson", CAMPAIGN)))
    persons = [orjson.loads(r) for r in crm("export", "persons").stdout.splitlines()]
    person = max(persons, key=lambda p: p["members"])
    identity = [orjson.loads(r) for r in crm("export", "identity").stdout.splitlines()]
    members = [r["identifier"] for r in identity if r["person_id"] == person["person_id"]]
    assert len(members) == person["members"]
    by_id = crm("history", person["person_id"]).stdout
    by_identifier = crm("history", members[-1]).stdout
    assert by_id == by_identifier and by_id.count("\n") >= 2
    missing = crm("history", "qq:nobody")
    assert missing.returncode == 2 and "no identifier" in missing.stderr
    assert crm("history", "nonsense").returncode == 2


def test_replay_in_place_and_into_a_new_directory(crm: Run, tmp_path: Path) -> None:
    crm("ingest", str(write(tmp_path / "e.ndjson", [*CAMPAIGN, *BAD_LINES])))
    digest = crm("digest").stdout
    assert crm("replay").stdout == digest
    assert crm("replay", "--into", str(tmp_path / "copy")).stdout == digest
    assert crm("digest", data_dir=tmp_path / "copy").stdout == digest
    assert crm("export", "dlq", data_dir=tmp_path / "copy").stdout.count("\n") == len(BAD_LINES)
    refused = crm("replay", "--into", str(tmp_path / "copy"))
    assert refused.returncode == 2 and "not empty" in refused.stderr


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["worker", "--port", "0"]])
def test_long_running_commands_refuse_the_empty_id_key(
    crm: Run, tmp_path: Path, command: list[str]
) -> None:
    refused = crm(*command, id_key="", broker="kafka://127.0.0.1:9")
    assert refused.returncode == 2
    assert "CRM2STREAM_ID_KEY" in refused.stderr and "recompute" in refused.stderr


def test_a_data_directory_refuses_another_id_key(crm: Run, tmp_path: Path) -> None:
    crm("ingest", str(write(tmp_path / "e.ndjson", CAMPAIGN[:10])))
    other = crm("digest", id_key="another-key")
    assert other.returncode == 2 and "another CRM2STREAM_ID_KEY" in other.stderr
    assert crm("digest").returncode == 0
