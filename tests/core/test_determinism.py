"""The same set of events gives the same tables, whatever the order and batching."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream.core.events import parse_day
from crm2stream.core.facts import rebuild_sums
from crm2stream.core.tables import STATE_TABLES
from tests.core import harness
from tests.core.strategies import DAYS, event_sets
from tests.events import lines

AS_OF = [parse_day(day) for day in DAYS]


@settings(max_examples=150, deadline=None)
@given(events=event_sets(), data=st.data())
def test_any_permutation_and_batching_gives_the_same_digest(events, data) -> None:  # type: ignore[no-untyped-def]
    shuffled = data.draw(st.permutations(events))
    batch = data.draw(st.integers(1, len(events)))
    first = harness.run(lines(events))
    second = harness.run(lines(shuffled), batch=batch)
    for day in [None, *AS_OF]:
        assert harness.view(first, day).digest() == harness.view(second, day).digest()


@settings(max_examples=100, deadline=None)
@given(events=event_sets(), data=st.data())
def test_repeated_events_change_nothing(events, data) -> None:  # type: ignore[no-untyped-def]
    repeats = data.draw(st.lists(st.sampled_from(events), max_size=10))
    once = harness.run(lines(events))
    twice = harness.run(lines(events + repeats))
    assert harness.view(once).digest() == harness.view(twice).digest()


@settings(max_examples=150, deadline=None)
@given(events=event_sets(), data=st.data())
def test_kept_sums_equal_sums_recomputed_from_facts(events, data) -> None:  # type: ignore[no-untyped-def]
    """Decayed sums updated event by event (in any order) equal a from-scratch rebuild."""
    facts = harness.run(lines(data.draw(st.permutations(events))))
    kept = {key: list(ident.sums) for key, ident in facts.idents.items()}
    rebuild_sums(facts)
    assert kept == {key: ident.sums for key, ident in facts.idents.items()}


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
