"""Table topics: whatever the batching and however often they are published, the latest
record per key is the table, as the spec says it (``docs/architecture.md``)."""

from __future__ import annotations

import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream.core.tables import STATE_TABLES
from crm2stream.engine.core import Core
from crm2stream.spec.persons import person_id_of
from tests import harness
from tests.events import identify, lines, purchase, unlink
from tests.harness import CFG
from tests.strategies import event_sets
from tests.topics import check_core_compaction


class TieStore:
    """Keeps the published ties and anchors a core hands out, as the embedded engine's
    store does."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def fetch(self, keys: list[bytes]) -> list[bytes | None]:
        return [self.data.get(key) for key in keys]

    def keep(self, core: Core) -> None:
        for key, record in core.take_published_keys():
            if record is None:
                del self.data[key]  # only a stored key is deleted
            else:
                self.data[key] = record


def run(
    core: Core,
    batches: list[list[bytes]],
    publish_after: list[bool],
    ties: TieStore | None = None,
    position: int = 0,
    topics: list[list[bytes]] | None = None,
) -> list[list[bytes]]:
    """Process the batches, publishing after those marked and at the end; the records of
    each table topic in order (after ``topics``), the published ties kept in ``ties``."""
    topics = topics if topics is not None else [[] for _ in STATE_TABLES]

    def publish() -> None:
        if core.begin_publication():
            while True:
                out = core.publish([len(records) for records in topics], 3)
                if ties is not None:
                    ties.keep(core)
                if not any(count for count, _ in out):
                    return
                for records, (count, ndjson) in zip(topics, out, strict=True):
                    if count:
                        records.extend(ndjson.split(b"\n"))

    for batch, now in zip(batches, publish_after, strict=True):
        core.process(b"\n".join(batch), position)
        position += len(batch)
        core.score_changes(0, 0)
        if now:
            publish()
    publish()
    return topics


@settings(max_examples=60, deadline=None)
@given(events=event_sets(), data=st.data())
def test_table_topics_compact_to_the_tables(events, data) -> None:  # type: ignore[no-untyped-def]
    raw = lines(events)
    random.Random(data.draw(st.integers(0, 1 << 30))).shuffle(raw)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=6)))
    batches = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    publish_after = data.draw(st.lists(st.booleans(), min_size=len(batches), max_size=len(batches)))
    core = Core(CFG)
    topics = run(core, batches, publish_after)
    check_core_compaction(core, topics)
    harness.tables(harness.run(raw))  # ...and the engine's tables are the spec's


def test_a_merge_retires_a_person_id_and_a_split_brings_it_back() -> None:
    steps = [
        [purchase("p1", "2026-11-01T10:00:00Z", "phone:1", "10")],
        [purchase("p2", "2026-11-01T11:00:00Z", "wechat:w", "20")],
        [identify("i1", "2026-11-02T10:00:00Z", "wechat:w", "phone:1")],
        [unlink("u1", "2026-11-03T10:00:00Z", "wechat:w", "phone:1")],
    ]
    core = Core(CFG)
    topics = run(core, [lines(step) for step in steps], [True] * len(steps))
    persons = [orjson.loads(r) for r in topics[STATE_TABLES.index("persons")]]
    phone, wechat = (person_id_of(anchor, CFG.id_key) for anchor in ("phone:1", "wechat:w"))
    # one record per person per publication, in person id order; the merge retires
    # wechat's id (phone was seen first), the split brings it back
    merged = [(r["key"], r["value"] is None) for r in persons[2:4]]
    assert sorted(merged) == sorted([(phone, False), (wechat, True)])
    assert {r["key"] for r in persons[4:]} == {phone, wechat}
    assert all(r["value"] is not None for r in persons[4:])
    check_core_compaction(core, topics)


@settings(max_examples=25, deadline=None)
@given(events=event_sets(), data=st.data())
def test_published_ties_in_a_store_publish_what_ties_in_memory_do(events, data) -> None:  # type: ignore[no-untyped-def]
    """The keyed ties (the embedded engine's) against the ones a core keeps (a worker's),
    across a checkpoint and a load: a core loaded with its ties in a store derives only
    the anchors, and must tombstone and keep the same pairs as one that never stopped."""
    raw = lines(events)
    random.Random(data.draw(st.integers(0, 1 << 30))).shuffle(raw)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), min_size=1, max_size=6)))
    batches = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    publish_after = data.draw(st.lists(st.booleans(), min_size=len(batches), max_size=len(batches)))
    stop = data.draw(st.integers(1, len(batches)))
    publish_after[stop - 1] = True  # what the first run's end does
    whole = run(Core(CFG), batches, publish_after)
    ties, core = TieStore(), Core(CFG)
    core.keep_published_ties(ties.fetch)
    first = run(core, batches[:stop], publish_after[:stop], ties)
    # a restart: the checkpoint holds the facts, the store the ties
    parts = core.checkpoint(full=True)
    loaded = Core(CFG)
    loaded.keep_published_ties(ties.fetch)
    loaded.load(parts, max_ts=core.max_ts)
    assert dict((name, n) for name, n, _ in loaded.footprint())["published"] == 0
    position = sum(len(batch) for batch in batches[:stop])
    topics = run(loaded, batches[stop:], publish_after[stop:], ties, position, first)
    assert topics == whole
    assert not loaded.take_published_keys()  # every write was taken
