"""A seeded, reproducible social-CRM campaign: the sample data, the benchmark load and
the demo all come from here.

People hold one to four identifiers (member card, phone, WeChat, Weibo, QQ, email); they
link them (and now and then unlink a reassigned phone), post and re-share content in
cascades, comment and reply, buy (sometimes through a share), and grant or revoke
permissions. Popularity is skewed: a few people draw most of the attention.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

KINDS = ("member_card", "phone", "wechat", "weibo", "qq", "email")
SOURCES = ("wechat", "weibo", "qq", "web", "store", "app")
GRANTEES = ("brand:lumiere", "group:beauty-club", "company:partner-retail")
PURPOSES = ("marketing", "profiling", "partner_sharing")
CHANNELS = ("*", "sms", "wechat", "email")
# Share of each type in the stream (they sum to 1).
MIX = (
    ("comment", 0.33),
    ("share", 0.27),
    ("purchase", 0.16),
    ("identify", 0.12),
    ("permission", 0.09),
    ("unlink", 0.03),
)
BAD_LINES = (
    b"{not json",
    b"[1, 2, 3]",
    b'{"event_id": "bad-type", "type": "like", "occurred_at": "2026-11-01T00:00:00Z"}',
    b'{"type": "comment", "occurred_at": "2026-11-01T00:00:00Z"}',
    b"\xff\xfe not utf-8",
)


@dataclass(frozen=True, slots=True)
class Campaign:
    identifiers: int = 1_000
    events: int = 5_000
    days: int = 90
    start: datetime = datetime(2026, 8, 1, tzinfo=UTC)
    seed: int = 7
    bad_every: int = 0  # one bad line every N events (0: none)
    currency: str = "CNY"


def _identifier(rng: random.Random, person: int, slot: int) -> dict[str, str]:
    kind = KINDS[(person + slot) % len(KINDS)]
    if kind == "phone":
        value = f"+86 138-{person % 10000:04d}-{(person * 7 + slot) % 10000:04d}"
    elif kind == "email":
        value = f"Member{person}.{slot}@Example.com"
    else:
        value = f"{kind[:2]}{person:07d}{slot}"
    return {"kind": kind, "value": value}


def events(campaign: Campaign) -> Iterator[dict[str, Any]]:
    """The campaign's events as JSON-ready dicts, in (roughly) time order."""
    rng = random.Random(campaign.seed)
    people: list[list[dict[str, str]]] = []
    count = 0
    while count < campaign.identifiers:
        size = min(rng.choice((1, 1, 2, 2, 3, 4)), campaign.identifiers - count)
        person = len(people)
        people.append([_identifier(rng, person, slot) for slot in range(size)])
        count += size
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(people))]
    popular = rng.choices(range(len(people)), weights=weights, k=4096)
    links: list[tuple[dict[str, str], dict[str, str]]] = []
    shares: list[str] = []
    types = [name for name, _ in MIX]
    cumulative = [share for _, share in MIX]
    span = campaign.days * 86_400
    for n in range(campaign.events):
        kind = rng.choices(types, weights=cumulative)[0]
        person = rng.randrange(len(people))
        idents = people[person]
        actor = rng.choice(idents)
        jitter = rng.randint(-3600, 3600)
        second = max(0, min(span - 1, n * span // campaign.events + jitter))
        moment = campaign.start + timedelta(seconds=second, microseconds=rng.randrange(1000) * 1000)
        event: dict[str, Any] = {
            "event_id": f"ev-{campaign.seed}-{n:08d}",
            "type": kind,
            "occurred_at": moment.isoformat().replace("+00:00", "Z"),
            "actor": actor,
            "source": rng.choice(SOURCES),
        }
        if kind == "identify":
            other = rng.choice(idents)
            if other == actor:
                other = _identifier(rng, person, len(idents))
                idents.append(other)
            event["link"] = other
            links.append((actor, other))
        elif kind == "unlink":
            if not links:
                continue
            a, b = links[rng.randrange(len(links))]
            event["actor"], event["link"] = a, b
        elif kind in ("share", "comment"):
            owner = people[rng.choice(popular)]
            event["content_id"] = f"note-{rng.randrange(len(people) * 2)}"
            event["content_owner"] = rng.choice(owner)
            if kind == "share":
                if shares and rng.random() < 0.4:
                    event["parent_share_id"] = shares[-1 - rng.randrange(min(len(shares), 200))]
                event["recipients"] = [
                    rng.choice(people[rng.randrange(len(people))]) for _ in range(rng.randint(0, 4))
                ]
                shares.append(event["event_id"])
            else:
                if rng.random() < 0.3:
                    event["reply_to"] = rng.choice(people[rng.randrange(len(people))])
                event["text"] = rng.choice(
                    ("love it", "trial day 3: skin feels great", "where to buy?")
                )
        elif kind == "purchase":
            event["order_id"] = f"order-{n}"
            event["amount"] = f"{rng.randint(990, 99_900) / 100:.2f}"
            event["currency"] = campaign.currency
            if shares and rng.random() < 0.25:
                event["referral_share_id"] = shares[-1 - rng.randrange(min(len(shares), 500))]
        elif kind == "permission":
            event["grantee"] = rng.choice(GRANTEES)
            event["purpose"] = rng.choice(PURPOSES)
            event["channel"] = rng.choice(CHANNELS)
            event["granted"] = rng.random() < 0.8
            if rng.random() < 0.3:
                event["expires_at"] = (moment + timedelta(days=rng.randint(7, 60))).isoformat()
        yield event


def lines(campaign: Campaign) -> Iterator[bytes]:
    """NDJSON lines of the campaign, with a bad line every ``bad_every`` events if asked."""
    for n, event in enumerate(events(campaign), 1):
        yield orjson.dumps(event)
        if campaign.bad_every and n % campaign.bad_every == 0:
            yield BAD_LINES[(n // campaign.bad_every) % len(BAD_LINES)]
