"""Identity: persons are the connected components of the links that currently exist."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream.core.events import parse_day
from tests import harness
from tests.events import identify, lines, purchase, share, unlink
from tests.strategies import DAYS, event_sets

NAMED = ("actor", "link", "content_owner", "reply_to")


def from_scratch(events: list[dict[str, Any]], cutoff: str) -> dict[frozenset[str], str]:
    """Components and anchors computed directly from the definition, as of a cutoff."""

    def key(ident: dict[str, str]) -> str:
        return harness.decode_key(ident)

    live = [e for e in events if e["occurred_at"] <= cutoff]
    first: dict[str, tuple[str, str]] = {}
    latest: dict[frozenset[str], tuple[str, str, bool]] = {}
    for e in live:
        named = [e[field] for field in NAMED if field in e] + e.get("recipients", [])
        stamp = (harness.utc(e["occurred_at"]), e["event_id"])
        for ident in named:
            k = key(ident)
            first[k] = min(first.get(k, stamp), stamp)
        if e["type"] in ("identify", "unlink"):
            pair = frozenset((key(e["actor"]), key(e["link"])))
            entry = (*stamp, e["type"] == "identify")
            if pair not in latest or entry[:2] > latest[pair][:2]:
                latest[pair] = entry
    neighbours: dict[str, set[str]] = {k: set() for k in first}
    for pair, (_, _, linked) in latest.items():
        if linked:
            a, b = sorted(pair)
            neighbours[a].add(b)
            neighbours[b].add(a)
    components: dict[frozenset[str], str] = {}
    seen: set[str] = set()
    for start in sorted(first):
        if start in seen:
            continue
        component, frontier = {start}, [start]
        while frontier:
            for nxt in neighbours[frontier.pop()]:
                if nxt not in component:
                    component.add(nxt)
                    frontier.append(nxt)
        seen |= component
        components[frozenset(component)] = min(component, key=lambda k: (first[k], k))
    return components


@settings(max_examples=200, deadline=None)
@given(events=event_sets(), data=st.data())
def test_persons_are_connected_components_of_current_links(events, data) -> None:  # type: ignore[no-untyped-def]
    ran = harness.run(lines(data.draw(st.permutations(events))))
    for day in DAYS:
        expected = from_scratch(events, f"{day}T23:59:59.999999Z")
        members = harness.members(ran, parse_day(day))
        got = {frozenset(keys): anchor for anchor, keys in members.items()}
        assert got == expected
        assert len(harness.table(ran, "persons", parse_day(day))) == len(expected)


def test_person_id_is_a_keyed_hash_of_the_anchor() -> None:
    ran = harness.run(lines([purchase("p", "2026-11-01T00:00:00Z", "phone:138", "1")]))
    [row] = harness.table(ran, "persons")
    mac = hmac.new(b"test-key", b"phone:138", hashlib.sha256).hexdigest()
    assert row["person_id"] == "p_" + mac[:20]


def test_merge_then_split_by_a_reassigned_number() -> None:
    events = [
        purchase("p1", "2026-11-01T00:00:00Z", "member_card:m1", "10"),
        identify("i1", "2026-11-02T00:00:00Z", "member_card:m1", "phone:138"),
        purchase("p2", "2026-11-03T00:00:00Z", "phone:138", "20"),
        unlink("u1", "2026-11-10T00:00:00Z", "member_card:m1", "phone:138"),
        identify("i2", "2026-11-11T00:00:00Z", "phone:138", "wechat:new_owner"),
    ]
    ran = harness.run(lines(events))
    on = harness.members(ran, parse_day("2026-11-05"))
    assert list(on.values()) == [["member_card:m1", "phone:138"]]
    assert [p["members"] for p in harness.table(ran, "persons", parse_day("2026-11-05"))] == [2]
    after = harness.members(ran)
    assert after == {
        "member_card:m1": ["member_card:m1"],
        "phone:138": ["phone:138", "wechat:new_owner"],
    }
    # the member keeps both purchases' history only while the phone was theirs
    rfm = harness.by_anchor(ran, "rfm")
    assert rfm["member_card:m1"]["frequency"] == 0
    assert rfm["phone:138"]["frequency"] == 0


def test_an_unlink_arriving_before_its_identify_still_wins_by_event_time() -> None:
    events = [
        unlink("u1", "2026-11-05T00:00:00Z", "qq:1", "phone:2"),
        identify("i1", "2026-11-01T00:00:00Z", "qq:1", "phone:2"),
    ]
    ran = harness.run(lines(events))
    assert len(harness.table(ran, "persons")) == 2
    assert len(harness.table(ran, "persons", parse_day("2026-11-02"))) == 1


def test_equal_timestamps_are_ordered_by_event_id() -> None:
    at = "2026-11-01T00:00:00Z"
    events = [identify("b", at, "qq:1", "phone:2"), unlink("a", at, "qq:1", "phone:2")]
    assert len(harness.table(harness.run(lines(events)), "persons")) == 1
    events = [identify("a", at, "qq:1", "phone:2"), unlink("b", at, "qq:1", "phone:2")]
    assert len(harness.table(harness.run(lines(events)), "persons")) == 2


def test_every_named_identifier_is_a_node() -> None:
    at = "2026-11-01T00:00:00Z"
    ran = harness.run(lines([share("s", at, "qq:1", content_owner="qq:2", recipients=["qq:3"])]))
    assert [r["identifier"] for r in harness.table(ran, "identity")] == ["qq:1", "qq:2", "qq:3"]
