"""Checkpoint segments: framing, the latest record of a key standing, and a full
checkpoint holding every kind of fact."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm2stream.engine import segments
from crm2stream.engine.core import Core
from crm2stream.engine.segments import CorruptSegment
from tests.conformance import CAMPAIGN
from tests.harness import CFG

tables = st.sampled_from(segments.TABLES)
records = st.lists(st.tuples(tables, st.binary(max_size=4), st.binary(max_size=300)))


@given(batches=st.lists(records, max_size=4), part_bytes=st.integers(1, 600))
def test_the_latest_record_of_each_key_stands(
    batches: list[list[tuple[bytes, bytes, bytes]]], part_bytes: int
) -> None:
    expected: dict[bytes, dict[bytes, bytes]] = {table: {} for table in segments.TABLES}
    for batch in batches:
        for table, key, record in batch:
            expected[table][key] = record
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(segments, "PART_BYTES", part_bytes)
        parts = [part for batch in batches for part in segments.frame(batch)]
    assert all(parts)
    got = segments.read(parts)
    assert {table: dict(got[table]) for table in got} == expected
    assert all(len(dict(got[table])) == len(got[table]) for table in got)


def test_a_cut_or_unknown_frame_is_an_error() -> None:
    [part] = segments.frame([(b"p", b"a\x1fb", b"record")])
    for end in range(1, len(part)):
        with pytest.raises(CorruptSegment):
            segments.read([part[:end]])
    with pytest.raises(CorruptSegment, match="table"):
        segments.read([b"x\x01k\x01v"])


def test_a_full_checkpoint_frames_every_kind_of_fact_and_then_nothing_is_dirty() -> None:
    core = Core(CFG)
    core.process(b"\n".join(CAMPAIGN), 0)
    core.score_changes(0, 0)
    full = segments.read(core.checkpoint(full=True))
    assert segments.read(core.checkpoint(full=False)) == {t: [] for t in segments.TABLES}
    assert all(full[table] for table in segments.TABLES)


def test_increments_are_folded_once_they_outweigh_the_full_segment() -> None:
    state = segments.Segments()
    fulls = []
    for size in [100, 30, 30, 30, 30, 30, 30, 30]:
        full = state.next_is_full()
        fulls.append(full)
        state.written(size, full)
    assert fulls == [True, False, False, False, False, True, False, False]
    assert state.seq == 8 and state.full_bytes == 30 and state.bytes == 90


def test_a_batch_applied_before_a_checkpoint_s_last_part_makes_the_next_one_full() -> None:
    half = len(CAMPAIGN) // 2
    core, fresh = Core(CFG), Core(CFG)
    core.process(b"\n".join(CAMPAIGN[:half]), 0)
    core.checkpoint(full=True)
    core.process(b"\n".join(CAMPAIGN[half:-1]), half)
    parts = core.checkpoint_parts(full=False)
    next(parts)  # begun, and its last part not yet asked for
    core.process(CAMPAIGN[-1], len(CAMPAIGN) - 1)
    fresh.process(b"\n".join(CAMPAIGN), 0)
    got = segments.read(core.checkpoint(full=False))
    full = segments.read(fresh.checkpoint(full=True))
    assert {t: dict(got[t]) for t in got} == {t: dict(full[t]) for t in full}
