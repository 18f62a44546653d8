"""The engine against the spec: the same set of events gives the spec's tables, whatever
the order and batching, as of every day; and the engine's digest follows."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream.core.events import parse_day
from crm2stream.core.tables import STATE_TABLES
from tests import harness
from tests.events import lines
from tests.strategies import DAYS, event_sets

AS_OF = [parse_day(day) for day in DAYS]


@settings(max_examples=200, deadline=None)
@given(events=event_sets(), data=st.data())
def test_the_engine_gives_the_spec_s_tables_in_any_order_and_batching(events, data) -> None:  # type: ignore[no-untyped-def]
    shuffled = data.draw(st.permutations(events))
    batch = data.draw(st.integers(1, len(events)))
    first = harness.run(lines(events))
    second = harness.run(lines(shuffled), batch=batch)
    for day in [None, *AS_OF]:
        assert harness.tables(second, day) == harness.tables(first, day)
        assert harness.digest(first, day) == harness.digest(second, day)


@settings(max_examples=100, deadline=None)
@given(events=event_sets(), data=st.data())
def test_repeated_events_change_nothing(events, data) -> None:  # type: ignore[no-untyped-def]
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=10))
    once = harness.run(lines(events))
    twice = harness.run(lines(events + repeats), batch=data.draw(st.integers(1, 50)))
    assert harness.tables(twice) == harness.tables(once)
    assert harness.digest(once) == harness.digest(twice)


@settings(max_examples=100, deadline=None)
@given(events=event_sets(), data=st.data())
def test_kept_sums_equal_sums_recomputed_from_facts(events, data) -> None:  # type: ignore[no-untyped-def]
    """Decayed sums updated event by event (in any order) equal a from-scratch rebuild,
    and both give the spec's scores."""
    ran = harness.run(lines(data.draw(st.permutations(events))))
    kept = harness.tables(ran)
    ran.core.rebuild_sums()
    assert harness.tables(ran) == kept


@settings(max_examples=60, deadline=None)
@given(events=event_sets())
def test_as_of_equals_ingesting_only_the_events_up_to_that_day(events) -> None:  # type: ignore[no-untyped-def]
    """Time travel: the tables as of day D are those of the events up to the end of D."""
    everything = harness.run(lines(events))
    for day_text, day in zip(DAYS, AS_OF, strict=True):
        past = [e for e in events if e["occurred_at"][:10] <= day_text]
        if not past:
            continue
        only_past = harness.run(lines(past))
        for table in STATE_TABLES:
            expected = harness.table(only_past, table, day)
            assert harness.table(everything, table, day) == expected, table
