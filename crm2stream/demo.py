"""``crm2stream demo``: a CRM 2.0 trial campaign, played into the engine while the dashboard
serves it.

The story: the brand Lumière recruits trial users for a serum in its community. Applicants
comment on the call and share it with friends, who re-share it on. Selected trial users
post notes and photos that others comment on, reply to and pass along. Members link their
community accounts to their member cards and phones (and now and then a reassigned phone is
unlinked). Trial users buy, often through a friend's note. People grant the brand
permission to market to them, and some revoke it later.

The events are seeded (the same seed plays the same campaign) and arrive at a set rate,
with campaign time running faster than the wall clock, so the dashboard visibly moves.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from crm2stream.api.hub import EngineHost
from crm2stream.synth import BAD_LINES

log = logging.getLogger("crm2stream.demo")

CALL = "trial-call-serum"
CHANNELS = ("wechat", "sms", "email")
#: one broken input line (see ``synth.BAD_LINES``) after every this many events
BAD_EVERY = 750


def _days_ago(days: int) -> datetime:
    """09:00 UTC of the day ``days`` before today."""
    today = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


@dataclass(frozen=True, slots=True)
class Story:
    people: int = 1000
    events: int = 20_000
    seed: int = 2026
    #: campaign days the events span
    days: int = 28
    #: the campaign's first morning: by default the one that ends it yesterday, so every
    #: event is dated before it arrives (an event dated after it is rejected)
    start: datetime = field(default_factory=lambda: _days_ago(29))


@dataclass(slots=True)
class _Member:
    community: dict[str, str]  # the account they use in the community
    card: dict[str, str]
    phone: dict[str, str]
    linked: bool = False
    trial: bool = False
    consent: bool = False
    channel: str = "wechat"


def campaign(story: Story) -> Iterator[dict[str, Any]]:
    """The campaign's events, in (roughly) time order."""
    rng = random.Random(story.seed)
    members = [
        _Member(
            {"kind": rng.choice(("weibo", "qq", "wechat")), "value": f"fan{n:05d}"},
            {"kind": "member_card", "value": f"LM{n:06d}"},
            {"kind": "phone", "value": f"+86 139 {n:04d} {rng.randrange(10_000):04d}"},
        )
        for n in range(story.people)
    ]
    # influence is skewed: a few members draw most of the attention
    weights = [1 / (rank + 1) ** 0.9 for rank in range(story.people)]
    notes: list[tuple[str, _Member]] = []
    shares: list[str] = []
    span = story.days * 86_400

    for n in range(story.events):
        moment = story.start + timedelta(seconds=n * span // story.events + rng.randint(-900, 900))
        progress = n / story.events
        member = members[rng.randrange(story.people)]
        event: dict[str, Any] = {
            "event_id": f"demo-{story.seed}-{n:07d}",
            "occurred_at": moment.isoformat().replace("+00:00", "Z"),
            "actor": member.community,
            "source": member.community["kind"],
        }
        roll = rng.random()
        if progress < 0.05 or roll < 0.1:
            # recruitment: apply under the brand's call, or pass it on (the brand's own
            # account is left out of the people being valued)
            if rng.random() < 0.5:
                event |= {"type": "comment", "content_id": CALL}
                event["text"] = "I'd love to try it!"
                member.trial = member.trial or rng.random() < 0.35
            else:
                event |= _share(rng, members, weights, CALL, None, shares, event["event_id"])
        elif roll < 0.22 and not member.linked:
            # link the community account to the member card, or the card to the phone
            event["type"] = "identify"
            event["actor"], event["link"] = rng.choice(
                ((member.community, member.card), (member.card, member.phone))
            )
            event["source"] = "store"
            member.linked = True
        elif roll < 0.235 and member.linked:
            # the phone number was reassigned
            event |= {"type": "unlink", "actor": member.card, "link": member.phone}
            event["source"] = "store"
        elif roll < 0.33:
            # a trial user posts a note or photo
            author = _weighted(rng, members, weights)
            note = f"note-{n}"
            notes.append((note, author))
            event |= {"actor": author.community, "type": "share", "content_id": note}
            event["recipients"] = [_weighted(rng, members, weights).community for _ in range(3)]
            shares.append(event["event_id"])
        elif roll < 0.58 and notes:
            note, author = notes[-1 - min(len(notes) - 1, int(rng.expovariate(0.05)))]
            if rng.random() < 0.6:
                event |= {"type": "comment", "content_id": note, "content_owner": author.community}
                event["text"] = rng.choice(("so pretty", "does it sting?", "ordering now"))
                if rng.random() < 0.3:
                    event["reply_to"] = _weighted(rng, members, weights).community
            else:
                event |= _share(
                    rng, members, weights, note, author.community, shares, event["event_id"]
                )
        elif roll < 0.8:
            # a purchase, in the store with the member card or online, often via a note
            buyer = (
                member if member.trial or rng.random() < 0.3 else _weighted(rng, members, weights)
            )
            event["actor"] = buyer.card if rng.random() < 0.5 else buyer.community
            event |= {"type": "purchase", "order_id": f"order-{n}", "currency": "CNY"}
            event["amount"] = f"{rng.choice((129, 259, 399, 799)) + rng.choice((0, 0.9)):.2f}"
            if shares and rng.random() < 0.45:
                event["referral_share_id"] = shares[-1 - rng.randrange(min(len(shares), 300))]
        else:
            # permission: most grant marketing; some revoke what they granted
            if member.consent:
                member.consent = rng.random() >= 0.25  # revoke, or confirm
            else:
                member.consent = rng.random() < 0.7
                member.channel = rng.choice(CHANNELS)
            event |= {
                "type": "permission",
                "grantee": "brand:lumiere",
                "purpose": "marketing",
                "channel": member.channel,
                "granted": member.consent,
            }
        yield event


def _weighted(rng: random.Random, members: list[_Member], weights: list[float]) -> _Member:
    return rng.choices(members, weights=weights)[0]


def _share(
    rng: random.Random,
    members: list[_Member],
    weights: list[float],
    content: str,
    owner: dict[str, str] | None,
    shares: list[str],
    event_id: str,
) -> dict[str, Any]:
    """A share of some content, often a re-share of a recent share of it (a cascade)."""
    share: dict[str, Any] = {"type": "share", "content_id": content}
    if owner is not None:
        share["content_owner"] = owner
    share["recipients"] = [
        members[rng.randrange(len(members))].community for _ in range(rng.randint(1, 5))
    ]
    if shares and rng.random() < 0.5:
        share["parent_share_id"] = shares[-1 - rng.randrange(min(len(shares), 50))]
    shares.append(event_id)
    return share


def feed(story: Story) -> Iterator[bytes]:
    """The campaign as input lines: now and then a broken one, as real feeds have."""
    for n, event in enumerate(campaign(story), 1):
        yield orjson.dumps(event)
        if n % BAD_EVERY == 0:
            yield BAD_LINES[(n // BAD_EVERY) % len(BAD_LINES)]


async def play(host: EngineHost, story: Story, rate: float) -> None:
    """Submit the campaign's lines at ``rate`` per second, a tick at a time."""
    tick = 0.1
    per_tick = max(1, round(rate * tick))
    pending = feed(story)
    loop = asyncio.get_running_loop()
    next_tick = loop.time()
    played = 0
    while True:
        lines = list(itertools.islice(pending, per_tick))
        if not lines:
            break
        await host.submit(lines)
        played += len(lines)
        next_tick += tick
        await asyncio.sleep(max(0.0, next_tick - loop.time()))
    log.warning("the demo campaign is played: %d events; still serving", played)
