"""Hypothesis strategies: small, dense event sets where merges, splits, cascades and
out-of-order references really happen."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.events import comment, identify, permission, purchase, share, unlink

IDENTIFIERS = [
    "phone:1380001",
    "phone:1380002",
    "member_card:m1",
    "member_card:m2",
    "wechat:w1",
    "wechat:w2",
    "email:a@x.cn",
    "qq:q1",
]
#: days in the past of any run (an event is judged against when it arrives)
DAYS = ["2026-10-01", "2026-10-02", "2026-10-04", "2026-10-09", "2026-11-05"]

who = st.sampled_from(IDENTIFIERS)
when = st.builds(
    lambda day, hour, second: f"{day}T{hour:02d}:00:{second:02d}Z",
    st.sampled_from(DAYS),
    st.integers(0, 23),
    st.integers(0, 3),
)


@st.composite
def event_sets(draw: st.DrawFn, max_size: int = 40) -> list[dict[str, Any]]:
    """Events with unique ids; shares and purchases may name shares of the same set."""
    count = draw(st.integers(1, max_size))
    share_ids = [f"s{i}" for i in range(count)]
    events: list[dict[str, Any]] = []
    for i in range(count):
        kind = draw(
            st.sampled_from(["identify", "unlink", "share", "comment", "purchase", "permission"])
        )
        at, actor = draw(when), draw(who)
        if kind in ("identify", "unlink"):
            other = draw(who.filter(lambda key, actor=actor: key != actor))
            maker = identify if kind == "identify" else unlink
            events.append(maker(f"l{i}", at, actor, other))
        elif kind == "share":
            extra: dict[str, Any] = {}
            if draw(st.booleans()):
                extra["parent_share_id"] = draw(st.sampled_from(share_ids))
            if draw(st.booleans()):
                extra["content_owner"] = draw(who)
            extra["recipients"] = draw(st.lists(who, max_size=3))
            body = share(share_ids[i], at, actor, **extra)
            if extra.get("parent_share_id") == share_ids[i]:
                body.pop("parent_share_id")
            events.append(body)
        elif kind == "comment":
            extra = {"content_owner": draw(who)}
            if draw(st.booleans()):
                extra["reply_to"] = draw(who)
            events.append(comment(f"c{i}", at, actor, **extra))
        elif kind == "purchase":
            amount = draw(st.sampled_from(["0", "9.99", "10", "123.45", "0.00000001"]))
            extra = {}
            if draw(st.booleans()):
                extra["referral_share_id"] = draw(st.sampled_from(share_ids))
            events.append(purchase(f"p{i}", at, actor, amount, **extra))
        else:
            extra = {"channel": draw(st.sampled_from(["*", "sms"]))}
            if draw(st.booleans()):
                extra["expires_at"] = draw(when)
            events.append(permission(f"g{i}", at, actor, draw(st.booleans()), **extra))
    return events
