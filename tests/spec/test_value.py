"""RFM against hand-computed cases; social credit along re-share chains; composite and tier."""

from __future__ import annotations

import pytest

from crm2stream.core.decay import Scales
from crm2stream.core.events import parse_day
from tests import harness
from tests.events import comment, identify, lines, purchase, share

D0 = "2026-11-01"


def rfm_row(events: list[dict[str, object]], as_of: str | None = None) -> dict[str, object]:
    ran = harness.run(lines(events))
    rows = harness.table(ran, "rfm", None if as_of is None else parse_day(as_of))
    assert len(rows) == 1, rows
    row = rows[0]
    return {k: row[k] for k in ("frequency", "recency", "T", "monetary_value")}


def test_single_purchase() -> None:
    events = [purchase("p1", "2026-11-01T10:00:00Z", "qq:1", "99.90")]
    assert rfm_row([*events, comment("c", "2026-11-11T00:00:00Z", "qq:2")]) == {
        "frequency": 0,
        "recency": 0,
        "T": 10,
        "monetary_value": 0.0,
    }


def test_same_day_purchases_are_merged() -> None:
    events = [
        purchase("p1", "2026-11-01T09:00:00Z", "qq:1", "10.00"),
        purchase("p2", "2026-11-01T18:00:00Z", "qq:1", "5.50"),
        purchase("p3", "2026-11-04T12:00:00Z", "qq:1", "20.00"),
        purchase("p4", "2026-11-06T12:00:00Z", "qq:1", "15.50"),
        purchase("p5", "2026-11-06T13:00:00Z", "qq:1", "4.50"),
    ]
    # days: 11-01 (15.50), 11-04 (20.00), 11-06 (20.00); first day excluded from monetary
    assert rfm_row(events, "2026-11-10") == {
        "frequency": 2,
        "recency": 5,
        "T": 9,
        "monetary_value": 20.0,
    }


def test_purchases_after_as_of_do_not_count() -> None:
    events = [
        purchase("p1", "2026-11-01T09:00:00Z", "qq:1", "10.00"),
        purchase("p2", "2026-11-03T09:00:00Z", "qq:1", "30.00"),
    ]
    assert rfm_row(events, "2026-11-02") == {
        "frequency": 0,
        "recency": 0,
        "T": 1,
        "monetary_value": 0.0,
    }
    ran = harness.run(lines(events))
    assert harness.table(ran, "rfm", parse_day("2026-10-31")) == []


def test_monetary_value_is_rounded_to_four_places_half_even() -> None:
    events = [
        purchase("p1", "2026-11-01T09:00:00Z", "qq:1", "1"),
        purchase("p2", "2026-11-02T09:00:00Z", "qq:1", "0.00005"),
        purchase("p3", "2026-11-03T09:00:00Z", "qq:1", "0.00010"),
    ]
    # the first day is left out; the mean of 0.00005 and 0.0001 is 0.000075 -> 0.0001
    assert rfm_row(events)["monetary_value"] == 0.0001


def test_rfm_follows_identity_merges() -> None:
    events = [
        purchase("p1", "2026-11-01T09:00:00Z", "phone:1", "10"),
        purchase("p2", "2026-11-05T09:00:00Z", "member_card:9", "30"),
        identify("i1", "2026-11-06T09:00:00Z", "phone:1", "member_card:9"),
    ]
    assert rfm_row(events)["frequency"] == 1


def scores(events: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    ran = harness.run(lines(events))
    return harness.by_anchor(ran, "scores")


def test_reshare_credits_the_nearest_ancestor_each_sharer_authored() -> None:
    # a shares s1; b re-shares (s2); a re-shares b's (s3); c re-shares s3 (s4) to 2 people.
    at = "2026-11-01T10:00:00Z"
    events = [
        share("s1", at, "qq:a"),
        share("s2", at, "qq:b", parent_share_id="s1"),
        share("s3", at, "qq:a", parent_share_id="s2"),
        share("s4", at, "qq:c", parent_share_id="s3", recipients=["qq:x", "qq:y"]),
    ]
    reach = {anchor: row["reach"] for anchor, row in scores(events).items()}
    # s4 reaches 3 (2 recipients + the re-sharer c) one level below a's s3 -> a gets 1.5
    # for it, not also 0.375 via s1; b gets 3 * 0.25 for s4, plus 0.5 * 1 for s3.
    # a: s2 (b reached, depth 1 from s1) 0.5 + s3 at depth 0 (0 recipients) + s4 1.5
    assert reach["qq:a"] == 2.0
    assert reach["qq:b"] == 0.5 + 0.75
    assert reach["qq:c"] == 2.0


def test_referred_revenue_flows_up_the_chain_whatever_the_order() -> None:
    at = "2026-11-01T10:00:00Z"
    events = [
        share("s1", at, "qq:a"),
        share("s2", at, "qq:b", parent_share_id="s1"),
        purchase("p1", at, "qq:z", "100", referral_share_id="s2"),
    ]
    in_order = scores(events)
    assert in_order["qq:b"]["referred_revenue"] == 100.0
    assert in_order["qq:a"]["referred_revenue"] == 50.0
    assert scores(list(reversed(events))) == in_order


def test_cascade_credit_stops_at_the_configured_depth() -> None:
    at = "2026-11-01T10:00:00Z"
    chain = [share("s0", at, "qq:root")]
    for i in range(1, 8):
        chain.append(share(f"s{i}", at, f"qq:n{i}", parent_share_id=f"s{i - 1}"))
    reach = scores(chain)["qq:root"]["reach"]
    depth = harness.CFG.cascade_depth
    assert reach == pytest.approx(sum(0.5**k for k in range(1, depth + 1)), abs=1e-4)


def test_popularity_decays_with_the_half_life() -> None:
    events = [
        comment("c1", "2026-10-02T10:00:00Z", "qq:fan", content_owner="qq:star"),
        comment("c2", "2026-11-01T10:00:00Z", "qq:fan", content_owner="qq:star"),
    ]
    # one comment today (1.0) and one 30 days (one half-life) ago (0.5)
    assert scores(events)["qq:star"]["popularity"] == 1.5


def test_composite_and_tier() -> None:
    events = [purchase("p1", "2026-11-01T10:00:00Z", "qq:1", "500")]
    row = scores(events)["qq:1"]
    # consumption 500 = the scale: 50 points, weighted 0.4 of 100
    assert row["composite"] == 20.0
    assert row["tier"] == "bronze"
    big = scores([purchase("p1", "2026-11-01T10:00:00Z", "qq:1", "1000000")])["qq:1"]
    assert big["tier"] == "silver" and big["composite"] == 40.0


def test_day_weights_are_exact_powers_of_two_at_whole_half_lives() -> None:
    scales = Scales.of(harness.CFG)
    assert scales.weight(30) == 2 * scales.weight(0)
    assert scales.value(scales.weight(10), 0, 40) == pytest.approx(0.5, rel=1e-12)
