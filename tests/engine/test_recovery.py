"""The embedded engine stopped dead at any batch, checkpoint or store write (inside a
checkpoint written in pieces too), reopened and offered the same lines again, ends with
the spec's tables as of every day: with every identifier body in memory, or with as few
as the cache allows (none but the dirty ones, after every checkpoint); and its table
topics compact to those tables, whether they were published at every checkpoint (a
followed engine) or only at the end of each ingest, after a first one published part of
the lines (then the checkpoints in between say what waits, and a reopened engine reads it
from them)."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream.core.events import parse_day
from crm2stream.core.tables import STATE_TABLES
from crm2stream.core.validation import Rejection, decode
from crm2stream.engine import checkpointing, write
from crm2stream.engine.embedded import EmbeddedEngine
from crm2stream.spec import state_tables
from tests.events import lines
from tests.harness import CFG
from tests.strategies import DAYS, event_sets
from tests.topics import check_compaction


def stop_dead_at(target: object, method: str, n: int) -> None:
    """Make the n-th call of ``target.method`` stop the engine dead, as a kill would."""
    original = getattr(target, method)
    calls = 0

    def stop(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == n:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    setattr(target, method, stop)


@settings(max_examples=100, deadline=None)
@given(
    events=event_sets(),
    batch=st.integers(1, 12),
    every=st.integers(1, 30),
    where=st.sampled_from(["submit", "checkpoint", "write"]),
    n=st.integers(1, 12),
    cache=st.sampled_from([0, 2_000, 1 << 30]),
    followed=st.booleans(),
    published=st.integers(0, 40),
)
def test_a_dead_stop_anywhere_resumes_to_the_spec_s_tables(  # type: ignore[no-untyped-def]
    events, batch, every, where, n, cache, followed, published
) -> None:
    raw = lines(events)
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as patch:
        # every checkpoint is written in pieces: its parts, then the write that commits them
        patch.setattr(checkpointing, "CHECKPOINT_WRITE_BYTES", 1)
        patch.setattr(write, "PAGE_LINES", 2)  # and batches span log pages
        data = Path(tmp)
        options: dict[str, Any] = {
            "batch_size": batch,
            "checkpoint_events": every,
            "cache_bytes": cache,
            "followed": followed,
        }
        engine = EmbeddedEngine(data, CFG, **options)
        if published:
            engine.ingest_lines(raw[:published])  # published at its end
        stop_dead_at(engine.store if where == "write" else engine, where, n)
        with contextlib.suppress(KeyboardInterrupt):  # stopped dead, or it never came
            engine.ingest_lines(raw)
        engine.store.close()
        with EmbeddedEngine(data, CFG, **options) as reopened:
            reopened.ingest_lines(raw)  # what the stop lost; the rest are duplicates
            valid = [
                e
                for e in (decode(line, CFG.currency) for line in raw)
                if not isinstance(e, Rejection)
            ]
            for day in [parse_day(d) for d in DAYS]:
                expected = state_tables(valid, day, CFG)
                for table in STATE_TABLES:
                    assert list(reopened.export(table, day)) == expected[table], (table, day)
            # ...and the table topics, with what a publication left of each person's ties
            # in the store, compact to the tables
            if valid:
                topics = {table: list(reopened.store.outputs(table)) for table in STATE_TABLES}
                check_compaction(topics, lambda table: reopened.export(table))
