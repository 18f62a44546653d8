"""Score changes and marketing triggers: the engine's, batch by batch, are the spec's."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream.core.validation import Rejection, decode
from crm2stream.engine.core import Core
from crm2stream.spec.changes import score_changes
from tests.events import identify, lines, permission, purchase, share, unlink
from tests.harness import CFG
from tests.strategies import event_sets


def engine_changes(batches: list[list[bytes]]) -> list[tuple[list[Any], list[Any]]]:
    """The engine's records after each batch, without their offsets, by person id."""
    core = Core(CFG)
    out = []
    position = 0
    for batch in batches:
        core.process(b"\n".join(batch), position)
        position += len(batch)
        (_, changes), (_, triggers) = core.score_changes(0, 0)
        parsed = []
        for ndjson in (changes, triggers):
            rows = [orjson.loads(line) for line in ndjson.split(b"\n") if line]
            for row in rows:
                del row["offset"]
            parsed.append(sorted(rows, key=lambda row: row["person_id"]))
        out.append((parsed[0], parsed[1]))
    return out


def spec_changes(batches: list[list[bytes]]) -> list[tuple[list[Any], list[Any]]]:
    decoded = [[decode(line, CFG.currency) for line in batch] for batch in batches]
    valid = [[e for e in batch if not isinstance(e, Rejection)] for batch in decoded]
    return score_changes(valid, CFG)


@settings(max_examples=200, deadline=None)
@given(events=event_sets(), data=st.data())
def test_the_engine_s_change_streams_are_the_spec_s(events, data) -> None:  # type: ignore[no-untyped-def]
    raw = data.draw(st.permutations(lines(events)))
    repeats = data.draw(st.lists(st.sampled_from(raw), max_size=5))
    raw = raw + repeats
    cuts = sorted(data.draw(st.lists(st.integers(1, len(raw)), max_size=6)))
    batches = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True) if a < b]
    assert engine_changes(batches) == spec_changes(batches)


def test_a_trigger_names_the_marketing_grants_held_at_that_moment() -> None:
    day = "2026-11-01T"
    batches = [
        lines([permission("g1", day + "08:00:00Z", "phone:1", True, grantee="brand:x")]),
        lines([purchase("p1", day + "09:00:00Z", "phone:1", "800")]),
        lines([share("s1", day + "10:00:00Z", "phone:2", recipients=["qq:1", "qq:2"])]),
    ]
    found = engine_changes(batches)
    assert found == spec_changes(batches)
    (_, none), (changes, triggers), _ = found
    assert none == [] and len(changes) == 1
    assert triggers[0]["grants"] == [{"grantee": "brand:x", "channel": "*"}]


def test_a_person_split_again_is_valued_from_what_its_members_hold_now() -> None:
    """The engine keeps a person's standing between batches (``native/src/standing.rs``):
    kept for {a, b}, then merged under an earlier anchor while ``a`` buys, then split
    back into the same members, it must not serve again as it was kept."""
    batches = [
        lines(
            [
                purchase("p1", "2026-11-02T08:00:00Z", "phone:1", "100"),
                identify("l1", "2026-11-02T09:00:00Z", "phone:1", "qq:2"),
                purchase("p2", "2026-11-02T10:00:00Z", "qq:2", "100"),
            ]
        ),
        lines(
            [
                purchase("p3", "2026-11-01T08:00:00Z", "email:z@x.cn", "10"),
                identify("l2", "2026-11-03T09:00:00Z", "email:z@x.cn", "phone:1"),
                purchase("p4", "2026-11-03T10:00:00Z", "phone:1", "5000"),
            ]
        ),
        lines(
            [
                unlink("u1", "2026-11-04T09:00:00Z", "email:z@x.cn", "phone:1"),
                purchase("p5", "2026-11-04T10:00:00Z", "qq:2", "1"),
            ]
        ),
    ]
    found = engine_changes(batches)
    assert found == spec_changes(batches)
    assert [len(changes) for changes, _ in found] == [1, 1, 2]
