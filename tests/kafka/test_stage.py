"""The table stage without Kafka: batches applied now, commits every so often, and a
worker that takes over from the last commit ending with the same tables."""

from __future__ import annotations

import itertools
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm2stream.core.config import CoreConfig
from crm2stream.core.events import DAY_US
from crm2stream.kafka import changelog, chunks
from crm2stream.kafka.names import Names
from crm2stream.kafka.stage import TableStage
from tests.conformance import BAD_INPUT, CAMPAIGN

CFG = CoreConfig(currency="CNY", id_key=b"test")
NAMES = Names.of("t")
EVENTS = [*CAMPAIGN[:1200], BAD_INPUT["malformed_json"], *CAMPAIGN[:5], *CAMPAIGN[1200:1500]]


def accepted_records(per_chunk: int = 50) -> list[tuple[int, bytes]]:
    """The accepted topic of EVENTS read by an intake from two input partitions."""
    inputs: dict[int, list[chunks.Record]] = {0: [], 1: []}
    now = time.time_ns() // 1_000_000
    for i, raw in enumerate(EVENTS):
        run = inputs[i % 2]
        run.append((len(run), raw, now))
    out: list[tuple[int, bytes]] = []
    for start in range(0, max(map(len, inputs.values())), per_chunk):
        for partition, run in inputs.items():
            part = run[start : start + per_chunk]
            if part:
                chunk = chunks.validate(partition, part, CFG)
                out.append((len(out), chunks.encode(chunk)))
    return out


def digest(stage: TableStage) -> str:
    max_ts = stage.core.max_ts
    assert max_ts is not None
    return stage.core.digest(max_ts // DAY_US)


def run(
    records: list[tuple[int, bytes]], cuts: list[int], commits: set[int]
) -> tuple[TableStage, list[changelog.BatchRecord]]:
    """Apply the records in batches ending at ``cuts``, committing after the batches whose
    number is in ``commits``."""
    stage = TableStage(CFG, NAMES)
    batches = []
    bounds = [0, *sorted(set(cuts)), len(records)]
    for number, (start, end) in enumerate(itertools.pairwise(bounds)):
        if start < end:
            stage.apply(records[start:end])
        if number in commits:
            batches.append(stage.commit().batch)
    return stage, batches


RECORDS = accepted_records()
CLEAN, _ = run(RECORDS, [], {0})
CLEAN_TOTALS = CLEAN.position.totals


def test_a_batch_gives_dead_letters_and_score_changes_at_once() -> None:
    stage = TableStage(CFG, NAMES)
    applied = stage.apply(RECORDS)
    assert applied is not None
    assert {lines.topic for lines in applied.lines} <= set(NAMES.streams.values())
    changes = next(lines for lines in applied.lines if lines.topic.endswith("score-changes"))
    assert dict(changes.headers)["inputs"] == b'{"0":753,"1":753}'
    assert len(applied.records) == 6 and all(r.topic == NAMES.dlq for r in applied.records)
    assert applied.counts.duplicates == 5 and applied.counts.rejected == 1
    assert stage.uncommitted and stage.apply(RECORDS) is None


def test_a_commit_publishes_what_changed_once_and_ends_in_a_changelog_batch() -> None:
    stage = TableStage(CFG, NAMES)
    stage.apply(RECORDS[:10])
    stage.apply(RECORDS[10:])
    committed = stage.commit()
    assert {lines.topic for lines in committed.lines} == set(NAMES.tables.values())
    batch = committed.batch
    assert batch.start == 0 and batch.position.next_offset == len(RECORDS)
    assert batch.position == stage.position and not stage.uncommitted
    assert stage.commit().lines == []  # nothing changed since
    restored = TableStage(CFG, NAMES)
    restored.restore([batch])
    assert digest(restored) == digest(CLEAN)
    assert restored.position.totals == CLEAN_TOTALS


def test_a_replay_commit_publishes_nothing() -> None:
    stage = TableStage(CFG, NAMES)
    stage.apply(RECORDS)
    assert stage.commit(publish=False).lines == []


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(min_value=1, max_value=len(RECORDS) - 1), max_size=6),
    commits=st.sets(st.integers(min_value=0, max_value=6), max_size=4),
    data=st.data(),
)
def test_taking_over_from_the_last_commit_ends_with_the_clean_tables(
    cuts: list[int], commits: set[int], data: st.DataObject
) -> None:
    """A worker dies after any batch; the next loads the commits so far and applies the
    accepted topic from the last commit's offset (as ``worker`` reads the gap)."""
    _, batches = run(RECORDS, cuts, commits)
    heir = TableStage(CFG, NAMES)
    heir.restore(batches)
    start = heir.position.next_offset
    # faust may hand the heir any later offset first; the gap before it is read again
    resume = data.draw(st.integers(min_value=start, max_value=len(RECORDS)))
    heir.apply(RECORDS[start:resume] + RECORDS[resume:])
    assert heir.apply(RECORDS) is None  # everything again: all of it was taken before
    last = heir.commit().batch
    assert digest(heir) == digest(CLEAN)
    assert heir.position.totals == CLEAN_TOTALS
    # the heir's commit continues the changelog where the last commit left it
    history = [*batches, last]
    frames = [f for b in history for f in changelog.encode(b)]
    assert [b.start for b in changelog.Reader().feed(frames)] == [b.start for b in history]
    fresh = TableStage(CFG, NAMES)
    fresh.restore(history)
    assert digest(fresh) == digest(CLEAN)
