"""A server's engine leaves the facts in the store until something needs them
(``defer_load``): only when loading them would change nothing stored."""

from __future__ import annotations

from pathlib import Path

from crm2stream.core.tables import STATE_TABLES
from crm2stream.engine.embedded import EmbeddedEngine
from tests import harness
from tests.conformance import CAMPAIGN
from tests.harness import CFG

FIRST, REST = CAMPAIGN[:1000], CAMPAIGN[1000:]


def served(path: Path) -> EmbeddedEngine:
    return EmbeddedEngine(path, CFG, batch_size=250, followed=True, defer_load=True)


def ingested(path: Path, lines: list[bytes]) -> None:
    with EmbeddedEngine(path, CFG, batch_size=250) as engine:
        engine.ingest_lines(lines)


def test_a_settled_directory_is_served_without_its_facts_until_events_arrive(
    tmp_path: Path,
) -> None:
    ingested(tmp_path, FIRST)
    topics = {}
    with served(tmp_path) as engine:
        assert engine.deferred and engine.core.max_ts is None  # nothing loaded
        topics = {table: list(engine.store.outputs(table)) for table in STATE_TABLES}
        engine.submit(b"\n".join(REST))
        assert not engine.deferred
        engine.checkpoint()
        digest = engine.digest()
    assert digest == harness.digest(harness.run(CAMPAIGN))
    with EmbeddedEngine(tmp_path, CFG) as engine:  # what it published came after the old
        assert all(
            list(engine.store.outputs(table))[: len(records)] == records
            for table, records in topics.items()
        )
        assert engine.digest() == digest


def test_a_checkpoint_or_a_stop_without_the_facts_keeps_the_stored_ones(tmp_path: Path) -> None:
    ingested(tmp_path, CAMPAIGN)
    with served(tmp_path) as engine:
        engine.checkpoint()  # a server's stop checkpoints
        assert engine.deferred
    with served(tmp_path) as engine:
        assert engine.deferred
        assert engine.digest() == harness.digest(harness.run(CAMPAIGN))  # loads them


def test_a_directory_with_work_left_loads_its_facts_at_once(tmp_path: Path) -> None:
    with EmbeddedEngine(tmp_path, CFG, batch_size=250) as engine:
        engine.process_batch(b"\n".join(FIRST))
        engine.checkpoint()  # unfollowed: the publication waits for the end of an ingest
    with served(tmp_path) as engine:
        assert not engine.deferred and not engine.core.unpublished
        assert engine.store.meta("state")["unpublished"] == 0
    with EmbeddedEngine(tmp_path, CFG, batch_size=250) as engine:
        engine.submit(b"\n".join(REST))  # logged, not checkpointed: a crash
    with served(tmp_path) as engine:
        assert not engine.deferred and engine.applied == engine.log_end == len(CAMPAIGN)
        assert engine.digest() == harness.digest(harness.run(CAMPAIGN))


def test_a_replay_in_place_of_a_served_directory_starts_from_nothing(tmp_path: Path) -> None:
    """The replay must not load the stored facts as its first batch arrives: that would
    recover the whole log inside it, then apply that batch again past the log's end."""
    ingested(tmp_path, CAMPAIGN)
    with EmbeddedEngine(tmp_path, CFG, batch_size=250) as engine:
        dead = list(engine.store.outputs("dlq"))
    with served(tmp_path) as engine:
        engine.replay_in_place()
        assert engine.log_end == len(CAMPAIGN)
        assert list(engine.store.outputs("dlq")) == dead
        assert engine.digest() == harness.digest(harness.run(CAMPAIGN))
