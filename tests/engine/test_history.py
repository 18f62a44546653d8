"""One person's history, read from the store's keys alone (``engine.history``): the
person an identifier belongs to now and the accepted events naming any of its members,
as the spec has them, with no fact loaded."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream.core.events import format_micros, timestamp_micros
from crm2stream.core.validation import Rejection, decode
from crm2stream.engine import write
from crm2stream.engine.embedded import EmbeddedEngine
from crm2stream.spec.history import accepted, fold
from crm2stream.spec.persons import persons
from tests.events import identify, lines
from tests.harness import CFG
from tests.strategies import IDENTIFIERS, event_sets

ALL_TIME = 1 << 62


@settings(max_examples=100, deadline=None)
@given(events=event_sets(), batch=st.integers(1, 12), every=st.integers(1, 30))
def test_an_identifier_s_person_and_history_are_the_spec_s_without_loading(  # type: ignore[no-untyped-def]
    events, batch, every
) -> None:
    raw = lines(events)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(write, "PAGE_LINES", 3)  # a line read reads its page of the log
        valid = accepted(
            e for e in (decode(line, CFG.currency) for line in raw) if not isinstance(e, Rejection)
        )
        people = persons(fold(valid, ALL_TIME), CFG.id_key)
        with tempfile.TemporaryDirectory() as tmp:
            with EmbeddedEngine(
                Path(tmp), CFG, batch_size=batch, checkpoint_events=every
            ) as engine:
                engine.ingest_lines(raw)
                engine.ingest_lines(raw[: len(raw) // 2])  # duplicates name nobody again
            with EmbeddedEngine(Path(tmp), CFG, load=False) as engine:
                assert engine.indexed and engine.core.max_ts is None  # nothing loaded
                for identifier in IDENTIFIERS:
                    person = next((p for p in people if identifier in p.members), None)
                    members = engine.members(identifier)
                    if person is None:
                        assert members is None
                        continue
                    assert members == set(person.members)
                    naming = [e for e in valid if {i.key for i in e.identifiers()} & members]
                    naming.sort(key=lambda e: (timestamp_micros(e.occurred_at), e.event_id))
                    rows = engine.history(members)
                    assert [row["event_id"] for row in rows] == [e.event_id for e in naming]
                    # every timestamp in UTC, as the tables write them
                    assert [row["occurred_at"] for row in rows] == [
                        format_micros(timestamp_micros(e.occurred_at)) for e in naming
                    ]


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("2026-03-01T08:00:00+08:00", "2026-03-01T00:00:00Z"),
        ("2026-03-01T00:00:00.5-01:30", "2026-03-01T01:30:00.500000Z"),
        ("2026-02-28t23:59:59.123456789z", "2026-02-28T23:59:59.123456Z"),
        ("2026-03-01 00:00:00.000001Z", "2026-03-01T00:00:00.000001Z"),
    ],
)
def test_history_shows_each_timestamp_in_utc_as_the_tables_do(
    tmp_path: Path, written: str, shown: str
) -> None:
    raw = lines([identify("i1", written, "wechat:w1", "phone:13800000001")])
    with EmbeddedEngine(tmp_path, CFG) as engine:
        engine.ingest_lines(raw)
        members = engine.members("wechat:w1")
        assert members is not None
        [row] = engine.history(members)
    assert row["occurred_at"] == shown
