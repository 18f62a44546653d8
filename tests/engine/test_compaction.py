"""Compacted table topics: only the latest record of each key is kept, offsets stay, and
what a subscriber reads from any offset is what it would have read, less what a later
record of the same key supersedes."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm2stream._native import TopicLatest
from crm2stream.core.tables import STATE_TABLES
from crm2stream.engine import compaction
from crm2stream.engine.embedded import EmbeddedEngine
from tests.conformance import CAMPAIGN
from tests.harness import CFG
from tests.topics import check_compaction


@given(
    key=st.text(),
    offset=st.integers(0, 1 << 62),
    value=st.none() | st.dictionaries(st.text(), st.text()),
)
def test_key_and_offset_are_found_whatever_the_key(key: str, offset: int, value: Any) -> None:
    record = orjson.dumps(
        {"at": "2026-11-01T00:00:00Z", "key": key, "offset": offset, "value": value},
        option=orjson.OPT_SORT_KEYS,
    )
    assert compaction.key_and_offset(record) == (orjson.dumps(key), offset)


@given(
    keys=st.lists(st.text(max_size=6) | st.sampled_from(['"', ',"offset":1', "\\"]), min_size=1),
    cuts=st.lists(st.integers(0, 200), max_size=5),
)
def test_the_compiled_compaction_keeps_the_latest_record_of_each_key(
    keys: list[str], cuts: list[int]
) -> None:
    """Whatever the keys hold and however the records fall into parts, and whether a part
    was compacted before: a record stays iff no later one has its key."""
    records = [
        orjson.dumps(
            {"at": "2026-11-01T00:00:00Z", "key": key, "offset": offset, "value": None},
            option=orjson.OPT_SORT_KEYS,
        )
        for offset, key in enumerate(keys)
    ]
    bounds = sorted({0, len(records), *(c for c in cuts if c < len(records))})
    parts = [(a, b"\n".join(records[a:b])) for a, b in itertools.pairwise(bounds)]
    latest = TopicLatest()
    for first, part in parts:
        latest.add(first, part)
    assert len(latest) == len(set(keys))
    kept = []
    for first, part in parts:
        compacted = latest.compact(first, part)
        if compacted is not None:
            again = latest.compact(first, compacted)  # compacting twice changes nothing
            assert again is compacted
            kept.extend(r for _, r in compaction.records(first, compacted))
    last = {key: offset for offset, key in enumerate(keys)}
    assert kept == [records[offset] for offset in sorted(last.values())]


def ingest_in_many_publications(path: Path) -> EmbeddedEngine:
    """A followed engine (a server's) publishes at each of its many checkpoints."""
    engine = EmbeddedEngine(path, CFG, batch_size=100, checkpoint_events=100, followed=True)
    for start in range(0, len(CAMPAIGN), 100):
        engine.process_batch(b"\n".join(CAMPAIGN[start : start + 100]))
    engine.checkpoint()
    return engine


def read(engine: EmbeddedEngine, table: str, start: int = 0) -> list[tuple[int, bytes]]:
    return list(engine.store.output_lines(table, start))


def test_compaction_keeps_the_latest_record_of_each_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ingest_in_many_publications(tmp_path / "plain") as plain:
        full = {table: read(plain, table) for table in STATE_TABLES}
    monkeypatch.setattr("crm2stream.engine.publishing.COMPACT_AFTER_RECORDS", 200)
    with ingest_in_many_publications(tmp_path / "compacted") as engine:
        assert set(engine.compacted) == set(STATE_TABLES)
        for table in STATE_TABLES:
            kept = read(engine, table)
            assert len(kept) < len(full[table]), table
            assert set(kept) <= set(full[table])
            offsets = [offset for offset, _ in kept]
            assert offsets == sorted(offsets) and offsets[-1] == full[table][-1][0]
            # from any offset: the same records, less the superseded ones
            middle = full[table][len(full[table]) // 2][0]
            assert set(read(engine, table, middle)) <= {r for r in full[table] if r[0] >= middle}
            last = {compaction.key_and_offset(r)[0]: r for _, r in full[table]}
            assert {compaction.key_and_offset(r)[0]: r for _, r in kept} == last
        kept_all = {t: read(engine, t) for t in STATE_TABLES}
        topics = {t: [orjson.loads(r) for _, r in kept_all[t]] for t in STATE_TABLES}
        check_compaction(topics, lambda table: engine.export(table), offsets_dense=False)
    with EmbeddedEngine(tmp_path / "compacted", CFG) as reopened:
        assert {t: read(reopened, t) for t in STATE_TABLES} == kept_all


def test_a_record_splits_into_its_key_and_value() -> None:
    key = 'email:a"b,"offset":1'
    record = orjson.dumps(
        {"at": "t", "key": key, "offset": 7, "value": {"x": ',"value":null'}},
        option=orjson.OPT_SORT_KEYS,
    )
    assert compaction.split_record(record) == (key, b'{"x":",\\"value\\":null"}')
    tombstone = orjson.dumps({"at": "t", "key": key, "offset": 8, "value": None})
    assert compaction.split_record(tombstone) == (key, None)
    with pytest.raises(ValueError, match="not a table record"):
        compaction.split_record(b'{"at":"t","key":1,"offset":1,"value":null}')
