"""Identifier bodies kept in a store: they leave the core's memory after a batch or a
checkpoint, come back when a batch needs them, and the tables come out as if they never
left. The store here is a dict (the engine's is RocksDB: ``test_recovery`` and the
conformance suite run it with the same budgets)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream.core.events import DAY_US
from crm2stream.core.tables import STATE_TABLES
from crm2stream.engine import core as engine_core
from crm2stream.engine.core import Core
from crm2stream.synth import Campaign, lines
from tests.conformance import CAMPAIGN
from tests.harness import CFG


class DictStore:
    """Keeps what the core writes, the way the embedded engine writes it."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.fetched = 0

    def fetch(self, keys: list[bytes]) -> list[bytes | None]:
        self.fetched += len(keys)
        return [self.data.get(key) for key in keys]

    def bodies(self) -> dict[str, list[int]]:
        """Per identifier, the checkpoint numbers its stored bodies are under."""
        stored: dict[str, list[int]] = {}
        for key in self.data:
            identifier, seq = key[2:].decode().split("\x1f")
            stored.setdefault(identifier, []).append(int(seq, 16))
        return stored


def checkpoint(core: Core, store: DictStore, seq: int, full: bool = False) -> None:
    core.begin_keyed_checkpoint(full, seq)
    for bodies in core.checkpoint_bodies():
        store.data.update(bodies)
    list(core.checkpoint_segment())
    for keys in core.checkpoint_stale(limit=7):  # in pieces, as the engine's are
        for key in keys:
            del store.data[key]
    core.end_checkpoint(committed=True)


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 400),
    every=st.integers(1, 5),
    budget=st.sampled_from([0, 3_000, 1 << 30]),
)
def test_bodies_in_a_store_give_the_tables_of_bodies_in_memory(
    batch: int, every: int, budget: int
) -> None:
    store, core, whole = DictStore(), Core(CFG), Core(CFG)
    core.attach_store(store.fetch, budget)
    seq = 1
    for n, start in enumerate(range(0, len(CAMPAIGN), batch)):
        chunk = b"\n".join(CAMPAIGN[start : start + batch])
        for each in (core, whole):
            each.process(chunk, start)
        assert core.score_changes(0, 0) == whole.score_changes(0, 0)
        store.data.update(core.evict(seq))  # written ahead of checkpoint `seq`
        sizes = {name: size for name, _, size in core.footprint()}
        assert sizes["resident bodies"] + sizes["packed bodies"] <= budget
        if n % every == every - 1:
            checkpoint(core, store, seq)
            seq += 1
            store.data.update(core.evict(seq))
    checkpoint(core, store, seq)
    assert core.evict(seq + 1) == []  # nothing is dirty after a checkpoint
    if budget == 0:
        assert core.resident == 0
        assert store.fetched > 0
    # each identifier's body is stored once: the versions a checkpoint replaced are gone
    stored = store.bodies()
    assert len(stored) == len(core._core) and all(len(s) == 1 for s in stored.values())
    day = core.max_ts
    assert day is not None
    assert core.digest(day // DAY_US) == whole.digest(day // DAY_US)


def test_a_chunk_larger_than_a_piece_sheds_its_bodies_as_it_goes() -> None:
    """A chunk's events are applied a piece at a time (``APPLY_PIECE`` in lib.rs, 5,000),
    and the cache is shed between pieces: a chunk of 12,000 events leaves decoded only the
    bodies its last piece read, and gives the score changes and tables of a core that
    keeps every body."""
    raw = list(lines(Campaign(identifiers=20_000, events=12_000, days=60, seed=5)))
    store, core, whole = DictStore(), Core(CFG), Core(CFG)
    core.attach_store(store.fetch, 0)
    for each in (core, whole):
        each.process(b"\n".join(raw), 0)
    counts = {name: n for name, n, _ in core.footprint()}
    assert 0 < counts["resident bodies"] < len(core._core) / 2
    assert counts["packed bodies"] > 0  # dirty, so packed rather than dropped
    assert core.score_changes(0, 0) == whole.score_changes(0, 0)
    store.data.update(core.evict(1))
    checkpoint(core, store, 1)
    day = core.max_ts
    assert day is not None
    assert core.digest(day // DAY_US) == whole.digest(day // DAY_US)


def test_the_persons_of_a_batch_are_valued_a_page_at_a_time() -> None:
    """Score changes value a batch's persons ``VALUED_PAGE`` (8,192, in pycore/apply.rs) at a
    time, glancing at one page's members at once. Here every body is in the store when the
    batch's persons are valued (checkpointed, then evicted with a budget of 0), so every
    member is glanced from the store, page by page; the records are those of a core that
    keeps every body decoded."""
    raw = b"\n".join(lines(Campaign(identifiers=40_000, events=24_000, days=60, seed=8)))
    store, core, whole = DictStore(), Core(CFG), Core(CFG)
    core.attach_store(store.fetch, 0)
    for each in (core, whole):
        each.process(raw, 0)
    checkpoint(core, store, 1)
    store.data.update(core.evict(2))
    assert {name: n for name, n, _ in core.footprint()}["packed bodies"] == 0
    assert core.score_changes(5, 7) == whole.score_changes(5, 7)
    day = core.max_ts
    assert day is not None
    assert len(list(whole.rows("persons", day // DAY_US))) > 2 * 8_192  # three pages


def test_a_body_the_store_lost_is_a_clear_error() -> None:
    store, core = DictStore(), Core(CFG)
    core.attach_store(store.fetch, 0)
    core.process(b"\n".join(CAMPAIGN[:300]), 0)
    core.score_changes(0, 0)
    checkpoint(core, store, 1)
    core.evict(2)
    store.data.clear()
    with pytest.raises(ValueError, match="under checkpoint 1 is missing from the store"):
        core.process(b"\n".join(CAMPAIGN[300:600]), 300)


def test_a_checkpoint_that_did_not_commit_leaves_every_body_where_it_was() -> None:
    store, core, whole = DictStore(), Core(CFG), Core(CFG)
    core.attach_store(store.fetch, 0)
    half = len(CAMPAIGN) // 2
    for each in (core, whole):
        each.process(b"\n".join(CAMPAIGN[:half]), 0)
        each.score_changes(0, 0)
    checkpoint(core, store, 1)
    core.evict(2)
    core.process(b"\n".join(CAMPAIGN[half:]), half)
    whole.process(b"\n".join(CAMPAIGN[half:]), half)
    store.data.update(core.evict(2))  # dirty bodies written ahead of checkpoint 2
    core.begin_keyed_checkpoint(False, 2)
    for bodies in core.checkpoint_bodies():
        store.data.update(bodies)
    core.end_checkpoint(committed=False)  # its commit failed: checkpoint 1 stands
    checkpoint(core, store, 2)
    store.data.update(core.evict(3))
    day = core.max_ts
    assert day is not None
    assert core.digest(day // DAY_US) == whole.digest(day // DAY_US)


@settings(max_examples=20, deadline=None)
@given(page=st.integers(1, 40), budget=st.sampled_from([0, 3_000]), back=st.integers(0, 30))
def test_tables_read_a_page_at_a_time_are_the_tables_read_whole(
    page: int, budget: int, back: int
) -> None:
    """``export`` and ``digest`` read a page of persons (identifiers, for identity) at a
    time, fetching only the page's bodies, and dropping them again past the budget: the
    rows and the digest are those of a core that keeps every body, as of any day."""
    store, core, whole = DictStore(), Core(CFG), Core(CFG)
    core.attach_store(store.fetch, budget)
    for each in (core, whole):
        each.process(b"\n".join(CAMPAIGN), 0)
        each.score_changes(0, 0)
    checkpoint(core, store, 1)
    store.data.update(core.evict(2))
    assert core.max_ts is not None
    day = core.max_ts // DAY_US - back
    tables = {table: list(whole.rows(table, day)) for table in STATE_TABLES}  # one page
    digest = whole.digest(day)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_core, "ROWS_PAGE", page)
        fetched = store.fetched
        for table in STATE_TABLES:
            assert list(core.rows(table, day)) == tables[table], table
        assert core.digest(day) == digest
        if budget == 0:
            assert core.resident == 0  # each page's bodies left again
            assert store.fetched > fetched


def test_a_table_read_that_another_ended_is_an_error() -> None:
    """Reads go a page at a time: one that a later read, a digest or a chunk ended fails
    at its next page rather than carry on with another read's rows."""
    core = Core(CFG)
    core.process(b"\n".join(CAMPAIGN[:600]), 0)
    assert core.max_ts is not None
    day = core.max_ts // DAY_US
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_core, "ROWS_PAGE", 2)
        for interrupt in (
            lambda: list(core.rows("persons", day)),
            lambda: core.digest(day),
            lambda: core.process(b"\n".join(CAMPAIGN[600:610]), 600),
        ):
            first = core.rows("scores", day)
            next(first)
            interrupt()
            with pytest.raises(ValueError, match="ended before its last page"):
                list(first)
