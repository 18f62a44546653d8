"""The intake's chunks and the changelog's frames, without a broker."""

from __future__ import annotations

import base64
import time

import pytest

from crm2stream.kafka import changelog, chunks
from crm2stream.kafka.changelog import BatchRecord, ChangelogError, Position, Reader
from tests.conformance import BAD_INPUT, CAMPAIGN
from tests.events import line, purchase
from tests.harness import CFG

#: the broker's append time of the records (milliseconds)
NOW = time.time_ns() // 1_000_000


def test_a_chunk_keeps_valid_lines_and_the_verdicts_on_the_others() -> None:
    pretty = CAMPAIGN[1].replace(b",", b",\n  ", 2)
    records = [
        (10, CAMPAIGN[0], NOW),
        (11, BAD_INPUT["malformed_json"], NOW),
        (12, pretty, NOW),
        (13, b"  ", NOW),
    ]
    chunk = chunks.decode_chunk(chunks.encode(chunks.validate(3, records, CFG)))
    assert chunk.partition == 3 and chunk.offsets == [10, 12] and chunk.end == 14
    lines = chunk.lines.split(b"\n")
    assert lines[0] == CAMPAIGN[0] and b"\n" not in lines[1]
    assert chunk.originals == {1: pretty}
    assert [(o, reason) for o, reason, _, _ in chunk.refused] == [
        (11, "malformed_json"),
        (13, "malformed_json"),
    ]
    assert chunk.refused[0][3] == BAD_INPUT["malformed_json"]
    assert len(chunk.types) == 2


def test_an_event_dated_too_far_after_its_record_arrived_is_refused() -> None:
    arrived = 1_793_529_600_000  # 2026-11-01T10:40:00Z
    near = line(purchase("near", "2026-11-02T10:40:00Z", "qq:1", "1"))  # the tolerance, exactly
    far = line(purchase("far", "2026-11-02T10:40:00.000001Z", "qq:1", "1"))
    chunk = chunks.validate(0, [(0, near, arrived), (1, far, arrived)], CFG)
    assert chunk.offsets == [0]
    [(offset, reason, error, raw)] = chunk.refused
    assert (offset, reason, raw) == (1, "future_timestamp", far)
    assert "2026-11-01T10:40:00Z" in error and "86400 s" in error


def test_after_drops_what_was_taken_before() -> None:
    records = [(o, CAMPAIGN[o], NOW) for o in range(5)] + [(5, BAD_INPUT["not_an_object"], NOW)]
    chunk = chunks.validate(0, records, CFG)
    rest = chunks.after(chunk, 3)
    assert rest.offsets == [3, 4] and rest.lines == b"\n".join(CAMPAIGN[3:5])
    assert [r[0] for r in rest.refused] == [5] and rest.types == chunk.types[3:]
    assert chunks.after(chunk, 6).offsets == [] and not chunks.after(chunk, 6).refused


def test_sized_runs_stay_under_the_limit() -> None:
    records = [(i, b"x" * 400, NOW) for i in range(10)]
    runs = chunks.sized(records, 1000)
    assert [len(r) for r in runs] == [2, 2, 2, 2, 2]
    assert [r for run in runs for r in run] == records
    assert chunks.sized([(0, b"y" * 5000, NOW)], 1000) == [[(0, b"y" * 5000, NOW)]]


def test_partitions_are_validated_in_order_and_cut_into_runs() -> None:
    records = {1: [(o, CAMPAIGN[o], NOW) for o in range(4)], 0: [(7, CAMPAIGN[9], NOW)]}
    limit = len(CAMPAIGN[0]) + len(CAMPAIGN[1])
    taken = chunks.validate_partitions(records, CFG, limit)
    assert (taken[0].partition, taken[0].offsets) == (0, [7])
    assert [o for c in taken[1:] for o in c.offsets] == [0, 1, 2, 3] and len(taken) > 2
    assert all(c.partition == 1 for c in taken[1:])


def batch(start: int, end: int, size: int = 10) -> BatchRecord:
    parts = [bytes([start % 251]) * size]
    return BatchRecord(start, Position(next_offset=end, lines=end), b'["e%d"]' % start, parts)


def test_frames_make_whole_batches_and_partial_or_repeated_ones_are_ignored() -> None:
    big = batch(0, 5, size=changelog.FRAME_BYTES * 2 + 7)
    frames = changelog.encode(big)
    assert len(frames) == 3
    second = changelog.encode(batch(5, 9))
    crashed = changelog.encode(batch(9, 12, size=changelog.FRAME_BYTES + 1))[:1]
    redone = changelog.encode(batch(9, 14))
    repeated = changelog.encode(batch(5, 9))
    read = list(Reader().feed([*frames, *second, *crashed, *redone, *repeated]))
    assert [(b.start, b.position.next_offset) for b in read] == [(0, 5), (5, 9), (9, 14)]
    assert read[0].parts == big.parts and read[0].accepted_ids == b'["e0"]'


def test_a_batch_announces_its_position_in_its_first_frame() -> None:
    big = batch(0, 5, size=changelog.FRAME_BYTES * 2 + 7)
    big.position.inputs = {0: 3, 1: 2}
    frames = changelog.encode(big)
    assert changelog.announced(frames[0]) == big.position
    assert changelog.frame_header(frames[-1]) == {"start": 0, "end": 5, "frame": 2, "frames": 3}
    with pytest.raises(ValueError, match="first frame"):
        changelog.announced(frames[1])


def test_a_gap_in_the_changelog_is_an_error() -> None:
    frames = [*changelog.encode(batch(0, 5)), *changelog.encode(batch(7, 9))]
    with pytest.raises(ChangelogError):
        list(Reader().feed(frames))


def test_originals_travel_in_base64() -> None:
    encoded = chunks.encode(chunks.validate(0, [(0, b"\xff\xfe", NOW)], CFG))
    assert base64.b64encode(b"\xff\xfe").decode() in encoded.decode()
