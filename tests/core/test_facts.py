"""The flat day buckets of an identifier: any order of days, one bucket per day, in order."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from crm2stream.core.facts import IdentFacts
from crm2stream.core.layout import R_REPLY


@given(st.lists(st.integers(0, 40), min_size=1, max_size=60))
def test_slots_keep_one_bucket_per_day_in_day_order(days: list[int]) -> None:
    ident = IdentFacts(first=(0, ""))
    expected: dict[int, int] = {}
    for day in days:
        ident.days[ident.slot(day) + R_REPLY] += 1
        expected[day] = expected.get(day, 0) + 1
    got = list(ident.buckets())
    assert [day for day, _ in got] == sorted(expected)
    assert {day: bucket[R_REPLY] for day, bucket in got} == expected
    assert all(sum(bucket) == bucket[R_REPLY] for _, bucket in got)
