"""What only the embedded engine has: its log, checkpoints, recovery and resumable ingest."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from crm2stream.core.config import CoreConfig
from crm2stream.core.events import timestamp_micros
from crm2stream.core.tables import STATE_TABLES
from crm2stream.engine import write
from crm2stream.engine.embedded import EmbeddedEngine
from crm2stream.engine.results import EngineError
from tests import harness
from tests.conformance import CAMPAIGN
from tests.events import comment, identify, line, purchase
from tests.harness import CFG
from tests.topics import check_compaction

CLEAN = harness.digest(harness.run(CAMPAIGN))


def open_engine(path: Path, **options: int) -> EmbeddedEngine:
    options.setdefault("batch_size", 250)
    return EmbeddedEngine(path, CFG, **options)  # type: ignore[arg-type]


def crash_on_batch(engine: EmbeddedEngine, n: int) -> None:
    """Make the engine stop dead (as at a kill) when asked to process its n-th batch."""
    original = engine.submit
    calls = 0

    def submit(chunk: bytes, ingest: tuple[str, int] | None = None, **options: Any) -> object:
        nonlocal calls
        calls += 1
        if calls == n:
            raise KeyboardInterrupt
        return original(chunk, ingest, **options)

    engine.submit = submit  # type: ignore[assignment, method-assign]


def test_tables_survive_a_restart_without_redoing_work(tmp_path: Path) -> None:
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN)
        scores = list(engine.export("scores"))
    with open_engine(tmp_path) as engine:
        assert engine.applied == engine.log_end == len(CAMPAIGN)
        assert list(engine.export("scores")) == scores
        assert engine.digest() == CLEAN


def test_batches_after_the_last_checkpoint_are_recovered_from_the_log(tmp_path: Path) -> None:
    engine = open_engine(tmp_path, checkpoint_events=1100)
    for start in range(0, len(CAMPAIGN), 250):
        engine.process_batch(b"\n".join(CAMPAIGN[start : start + 250]))  # a crash: no checkpoint
    changes = list(engine.export("score-changes"))
    assert 0 < engine.applied < engine.log_end
    engine.store.close()
    with open_engine(tmp_path) as recovered:
        assert recovered.applied == recovered.log_end == len(CAMPAIGN)
        assert recovered.digest() == CLEAN
        assert list(recovered.export("score-changes")) == changes


def test_an_interrupted_file_ingest_resumes_where_it_stopped(tmp_path: Path) -> None:
    source = tmp_path / "events.ndjson"
    source.write_bytes(b"\n".join(CAMPAIGN) + b"\n")
    with open_engine(tmp_path / "clean") as clean:
        clean.ingest_file(source)
        expected_changes = list(clean.export("score-changes"))
    engine = open_engine(tmp_path / "data")
    crash_on_batch(engine, 4)
    with pytest.raises(KeyboardInterrupt):
        engine.ingest_file(source)
    engine.store.close()
    with open_engine(tmp_path / "data") as resumed:
        counts = resumed.ingest_file(source)
        assert counts.as_dict() == {"accepted": len(CAMPAIGN) - 750, "rejected": 0, "duplicates": 0}
        assert resumed.digest() == CLEAN
        assert list(resumed.export("score-changes")) == expected_changes
        again = resumed.ingest_file(source)
        assert again.as_dict() == {"accepted": 0, "rejected": 0, "duplicates": len(CAMPAIGN)}


def test_an_interrupted_replay_carries_on_at_the_next_open(tmp_path: Path) -> None:
    engine = open_engine(tmp_path)
    engine.ingest_lines(CAMPAIGN)
    crash_on_batch(engine, 3)
    with pytest.raises(KeyboardInterrupt):
        engine.replay_in_place()
    with pytest.raises(EngineError, match=r"replay .* is unfinished"):
        engine.ingest_lines(CAMPAIGN[:10])  # it would write into the log being replayed
    engine.store.close()
    with open_engine(tmp_path) as reopened:
        assert reopened.log_end == len(CAMPAIGN)
        assert reopened.digest() == CLEAN


def test_the_topics_keep_their_id_until_a_replay_starts_them_again(tmp_path: Path) -> None:
    """A subscriber that kept what it read (the API's read model) may resume topics of the
    same id: it lasts across opens, and a replay in place, which numbers the topics from
    0 again, gives them another, an interrupted one included."""
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN[:100])
        first = engine.topics_id
    with open_engine(tmp_path) as engine:
        assert engine.topics_id == first
        crash_on_batch(engine, 1)
        with pytest.raises(KeyboardInterrupt):
            engine.replay_in_place()
    with open_engine(tmp_path) as engine:
        second = engine.topics_id
        assert second != first
        assert engine.output_ends  # the replay was carried on, under the same id
    with open_engine(tmp_path) as engine:
        assert engine.topics_id == second
    with EmbeddedEngine(tmp_path / "old", CFG) as engine:  # a directory from before the id
        engine.ingest_lines(CAMPAIGN[:100])
        batch = engine.store.batch()
        batch.meta("log", {k: v for k, v in engine.store.meta("log").items() if k != "topics"})
        engine.store.write(batch)
    with EmbeddedEngine(tmp_path / "old", CFG, followed=True) as engine:
        assert engine.store.meta("log")["topics"] == engine.topics_id  # served: kept at once


def test_replay_into_a_new_directory(tmp_path: Path) -> None:
    with open_engine(tmp_path / "a") as engine, open_engine(tmp_path / "b") as target:
        engine.ingest_lines(CAMPAIGN)
        engine.replay_into(target)
        assert target.digest() == CLEAN
        assert list(target.export("score-changes")) == list(engine.export("score-changes"))
        with pytest.raises(EngineError, match="not empty"):
            engine.replay_into(target)


def test_a_data_directory_refuses_another_currency(tmp_path: Path) -> None:
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN[:10])
    with pytest.raises(EngineError, match="CNY"):
        EmbeddedEngine(tmp_path, CoreConfig(currency="USD"))


def test_changed_value_settings_rebuild_the_kept_sums(tmp_path: Path) -> None:
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN)
    other = CoreConfig(id_key=CFG.id_key, half_life_days=7.0)
    expected = harness.digest(harness.run(CAMPAIGN, cfg=other))
    with EmbeddedEngine(tmp_path, other) as reopened:
        assert reopened.digest() == expected


def test_history_lists_a_persons_events_in_event_time_order(tmp_path: Path) -> None:
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN)
        person = max(engine.export("persons"), key=lambda p: p["members"])
        identity = engine.export("identity")
        named = {r["identifier"] for r in identity if r["person_id"] == person["person_id"]}
        rows = engine.history(named)
        stamps = [(r["occurred_at"], r["event_id"]) for r in rows]
        assert stamps == sorted(stamps) and len(rows) >= len(named) - 1
        for row in rows:
            keys = {f"{i['kind']}:{i['value']}" for i in _identifiers(row)}
            assert keys & named


def test_history_shows_a_stored_line_todays_contract_rejects_and_goes_on(
    tmp_path: Path,
) -> None:
    """A line an older, more lenient version accepted (here: properties nested 200 deep,
    which the fast decoder once took) is in the log for good: history never stops on it."""
    deep = b'{"x":' + b"[" * 200 + b"]" * 200 + b"}"
    good = line(purchase("p1", "2026-11-01T10:00:00Z", "qq:1", "10"))
    lenient = (
        line(comment("c1", "2026-11-02T10:00:00Z", "qq:1"))[:-1] + b',"properties":' + deep + b"}"
    )
    with open_engine(tmp_path) as engine:
        engine.ingest_lines([good, line(comment("c1", "2026-11-02T10:00:00Z", "qq:1"))])
        batch = engine.store.batch()
        batch.log_chunk(0, good + b"\n" + lenient, None, {})  # as the older version logged it
        engine.store.write(batch)
        rows = engine.history({"qq:1"})
    assert [row.get("event_id") for row in rows] == ["p1", None]
    assert rows[1]["offset"] == 1 and rows[1]["reason"] == "too_large"
    assert rows[1]["line"].encode() == lenient


def _identifiers(row: dict[str, object]) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for field in ("actor", "link", "content_owner", "reply_to"):
        if field in row:
            found.append(row[field])  # type: ignore[arg-type]
    found.extend(row.get("recipients", []))  # type: ignore[arg-type]
    return found


def test_a_checkpoint_of_the_retired_python_core_is_rebuilt_from_the_log(tmp_path: Path) -> None:
    """The Python core checkpointed in a format of its own: a data directory it wrote is
    rebuilt from its log at the first start, and ends at the clean digest."""
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN)
        batch = engine.store.batch()
        state = engine.store.meta("state")
        batch.meta("state", {**state, "core": "python"})
        for key, _ in engine.store.scan(b"c/"):  # a format the compiled core cannot read
            batch.wb.put(key, b"not a compiled checkpoint")
        engine.store.write(batch)
    with open_engine(tmp_path) as engine:
        assert engine.digest() == CLEAN
        assert engine.store.meta("state")["core"] == "native"


def checkpoint_segments(engine: EmbeddedEngine) -> set[bytes]:
    return {key.split(b"/")[0] for key, _ in engine.store.scan(b"c/")}


def test_incremental_checkpoints_are_folded_into_full_ones(tmp_path: Path) -> None:
    with open_engine(tmp_path, checkpoint_events=250) as engine:
        seen = []
        for start in range(0, len(CAMPAIGN), 250):
            engine.process_batch(b"\n".join(CAMPAIGN[start : start + 250]))
            seen.append(len(checkpoint_segments(engine)))
        checkpoints = engine.segments.seq
        assert checkpoints == len(CAMPAIGN) // 250
        assert max(seen) > 1  # incremental segments were written...
        assert seen.count(1) > 1  # ...and folded into a full one more than once
    with open_engine(tmp_path) as reopened:
        assert reopened.digest() == CLEAN


def test_an_older_checkpoint_layout_is_rebuilt_from_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN)
        state = engine.store.meta("state")
        del state["segments"]
        batch = engine.store.batch()
        batch.wb.delete_range(b"c/", b"c0")
        batch.wb.put(b"s/i/qq:old", b"a record of the per-key layout")
        batch.meta("state", state)
        engine.store.write(batch)
    with open_engine(tmp_path) as reopened:
        assert "older layout" in caplog.text
        assert reopened.digest() == CLEAN
        assert list(reopened.store.scan(b"s/")) == []
        assert checkpoint_segments(reopened) and "segments" in reopened.store.meta("state")


def test_a_checkpoint_without_published_ties_in_the_store_is_rebuilt_from_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The layout before ``t/``: each person's published ties were derived from every body
    at a load. Such a directory is rebuilt once, and its table topics still compact to
    the tables through the publications after it."""
    half = len(CAMPAIGN) // 2
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN[:half])
        assert list(engine.store.scan(b"t/")), "a publication stores its persons' ties"
        state = engine.store.meta("state")
        del state["published"]
        batch = engine.store.batch()
        batch.wb.delete_range(b"t/", b"t0")
        batch.meta("state", state)
        engine.store.write(batch)
    with open_engine(tmp_path) as reopened:
        assert "older layout" in caplog.text
        reopened.ingest_lines(CAMPAIGN[half:])
        assert reopened.digest() == CLEAN
        assert reopened.store.meta("state")["published"] == "keyed"
        assert list(reopened.store.scan(b"t/"))
        topics = {table: list(reopened.store.outputs(table)) for table in STATE_TABLES}
        check_compaction(topics, lambda table: reopened.export(table))


def test_accepted_ids_kept_per_chunk_move_into_their_index(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Directories written before the index kept each chunk's accepted ids as one list
    (``k/<start>``): the first open moves them into the index, and the chunks after the
    last checkpoint are applied again as they were."""
    engine = open_engine(tmp_path, checkpoint_events=1100)
    for start in range(0, len(CAMPAIGN), 250):
        engine.process_batch(b"\n".join(CAMPAIGN[start : start + 250]))  # a crash: no checkpoint
    assert 0 < engine.applied < engine.log_end
    accepted = sum(1 for _ in engine.store.scan(b"e/"))
    chunks: dict[bytes, list[str]] = {}
    for key, at in engine.store.scan(b"e/"):
        chunks.setdefault(at, []).append(key.decode())
    batch = engine.store.batch()
    batch.wb.delete_range(b"e/", b"e0")
    for at, ids in chunks.items():
        batch.wb.put(b"k/" + at, orjson.dumps(ids))
    engine.store.write(batch)
    engine.store.close()
    with open_engine(tmp_path) as reopened:
        assert "moved the accepted event ids of" in caplog.text
        assert list(reopened.store.scan(b"k/")) == []
        assert sum(1 for _ in reopened.store.scan(b"e/")) == accepted
        assert reopened.digest() == CLEAN
        again = reopened.ingest_lines(CAMPAIGN)
        assert again.accepted == 0 and again.duplicates == accepted
        assert reopened.digest() == CLEAN


def test_a_log_of_whole_batches_and_paged_ones_replays_as_it_was_batched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches written before log pages are one page each; later ones span pages. Both
    read back whole, in order, with their boundaries: a replay ends at the clean digest,
    and a line is found in its page."""
    half = len(CAMPAIGN) // 2
    monkeypatch.setattr(write, "PAGE_LINES", 1_000)  # a page per batch, as before pages
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN[:half])
    monkeypatch.setattr(write, "PAGE_LINES", 7)
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN[half:])
        batches = [(start, chunk.count(b"\n") + 1) for start, chunk in engine.store.chunks()]
        assert [start for start, _ in batches] == list(range(0, len(CAMPAIGN), 250))
        assert sum(size for _, size in batches) == len(CAMPAIGN)
        assert {size for _, size in batches} == {250}
        assert len(list(engine.store.scan(b"b/"))) == len(range(half, len(CAMPAIGN), 250))
        page = engine.store.chunk_at(len(CAMPAIGN) - 1)
        assert page is not None and page[1][-1] == CAMPAIGN[-1] and len(page[1]) <= 7
        engine.replay_in_place()
        assert engine.digest() == CLEAN


def test_a_publication_in_several_writes_skips_the_wal_and_is_flushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("crm2stream.engine.publishing.PUBLISH_ITEMS", 7)
    flushes = []
    with open_engine(tmp_path) as engine:
        original = engine.store.flush
        monkeypatch.setattr(engine.store, "flush", lambda: flushes.append(1) or original())
        engine.ingest_lines(CAMPAIGN)
        topics = {table: list(engine.store.outputs(table)) for table in STATE_TABLES}
        check_compaction(topics, lambda table: engine.export(table))
    assert flushes, "the unlogged publication was flushed"
    with open_engine(tmp_path) as reopened:
        assert reopened.digest() == CLEAN
        assert {t: list(reopened.store.outputs(t)) for t in STATE_TABLES} == topics


def micros(stamp: str) -> int:
    return timestamp_micros(datetime.fromisoformat(stamp))


def test_an_event_is_judged_against_its_recorded_arrival_at_every_replay(
    tmp_path: Path,
) -> None:
    """The verdict on an event dated after its arrival is reproduced from the log, never
    from the clock at replay time: years later the same event is still refused."""
    near = line(purchase("near", "2026-11-02T09:00:00Z", "qq:1", "10"))  # within a day
    far = line(purchase("far", "2026-11-02T10:00:01Z", "qq:1", "10"))  # a day and a second
    with open_engine(tmp_path / "data") as engine:
        engine.clock = lambda: micros("2026-11-01T10:00:00+00:00")
        counts = engine.ingest_lines([near, far])
        assert counts.as_dict() == {"accepted": 1, "rejected": 1, "duplicates": 0}
        [dead] = engine.export("dlq")
        assert dead["reason"] == "future_timestamp"
        assert "2026-11-01T10:00:00Z" in dead["error"] and "86400 s" in dead["error"]
        digest, dlq = engine.digest(), list(engine.export("dlq"))
        engine.clock = lambda: micros("2030-01-01T00:00:00+00:00")  # long after both
        engine.replay_in_place()
        assert engine.digest() == digest and list(engine.export("dlq")) == dlq
    with open_engine(tmp_path / "data") as source, open_engine(tmp_path / "copy") as copy:
        source.replay_into(copy)
        assert copy.digest() == digest and list(copy.export("dlq")) == dlq
    with open_engine(tmp_path / "data") as engine:  # recovery of the log tail: the same
        assert engine.digest() == digest


def test_chunks_logged_without_an_arrival_judge_no_event_too_far_ahead(tmp_path: Path) -> None:
    """A log written before arrivals were recorded keeps its tables on replay."""
    far = line(purchase("far", "2999-01-01T00:00:00Z", "qq:1", "10"))
    with open_engine(tmp_path / "data") as engine:
        batch = engine.store.batch()
        batch.log_chunk(0, far, None, {})
        engine.store.write(batch)
        engine.log_end = engine.replay_end = 1
        engine.replay_in_place()
        assert not list(engine.export("dlq"))
        assert [row["event_id"] for row in engine.history({"qq:1"})] == ["far"]
    with open_engine(tmp_path / "data") as source, open_engine(tmp_path / "copy") as copy:
        source.replay_into(copy)  # a copy keeps what the log recorded: no arrival
        assert not list(copy.export("dlq")) and copy.store.arrival(0) is None


def test_a_publication_waits_past_a_checkpoint_and_a_stop_for_the_end_of_an_ingest(
    tmp_path: Path,
) -> None:
    """An unfollowed engine publishes at the end of an ingest, not at the checkpoints in
    between; the identifiers' checkpoint records say what the topics hold, so a stop
    after such a checkpoint loses nothing: here a link made a person anchored by an
    identifier published alone, so the person id it was published under must be retired
    (a reopened engine that took the current anchors as published would not know)."""
    first = [line(comment("e1", "2026-08-02T10:00:00Z", "qq:a"))]
    later = [
        line(comment("e2", "2026-08-01T10:00:00Z", "qq:b")),  # seen before qq:a
        line(identify("e3", "2026-08-03T10:00:00Z", "qq:b", "qq:a")),
    ]
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(first)
        published = {table: list(engine.store.outputs(table)) for table in STATE_TABLES}
        engine.process_batch(b"\n".join(later))
        engine.checkpoint()
        assert engine.core.unpublished
        # what the checkpoint did not publish, it did not write
        assert {table: list(engine.store.outputs(table)) for table in STATE_TABLES} == published
    with open_engine(tmp_path) as reopened:  # the stop: no ingest ended
        assert reopened.core.unpublished
        reopened.ingest_lines([])
        topics = {table: list(reopened.store.outputs(table)) for table in STATE_TABLES}
        check_compaction(topics, lambda table: reopened.export(table))
        retired = [r["key"] for r in topics["persons"] if r["value"] is None]
        assert retired == [r["key"] for r in published["persons"]]


def test_a_followed_engine_publishes_what_an_unfollowed_one_left_waiting(
    tmp_path: Path,
) -> None:
    with open_engine(tmp_path) as engine:
        engine.process_batch(b"\n".join(CAMPAIGN[:500]))
        engine.checkpoint()
        assert engine.core.unpublished
        assert not list(engine.store.outputs("persons"))
    with EmbeddedEngine(tmp_path, CFG, followed=True) as served:
        assert not served.core.unpublished
        topics = {table: list(served.store.outputs(table)) for table in STATE_TABLES}
        check_compaction(topics, lambda table: served.export(table))
