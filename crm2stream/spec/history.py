"""Events folded into plain facts: what happened, per identifier, pair, share and day.

Events are taken in event-time order, ``(occurred_at, event_id)``, and only those up to the
cutoff, so "the latest event decides" is simply "the last one folded wins".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from crm2stream.core.events import (
    DAY_US,
    AnyEvent,
    CommentEvent,
    IdentifyEvent,
    PermissionEvent,
    PurchaseEvent,
    ShareEvent,
    timestamp_micros,
)

#: what an identifier does, in the order the interaction counts list it
DONE = ("identify", "unlink", "share", "comment", "purchase", "permission")
#: what an identifier receives from others
RECEIVED = ("share", "comment", "reply", "recipient")
#: the kinds of a tie from one identifier to another, in the order relationships list them
TIE_KINDS = ("reply", "comment", "share", "recipient")


def day_of(ts: int) -> int:
    """The UTC day (days since the epoch) of a timestamp in microseconds."""
    return ts // DAY_US


def end_of_day(day: int) -> int:
    """The last microsecond of a UTC day: the inclusive cutoff of an as-of day."""
    return (day + 1) * DAY_US - 1


def accepted(arrivals: Iterable[AnyEvent]) -> list[AnyEvent]:
    """The events in arrival order without duplicates: an event id counts once, the first
    time it arrives."""
    seen: set[str] = set()
    kept = []
    for event in arrivals:
        if event.event_id not in seen:
            seen.add(event.event_id)
            kept.append(event)
    return kept


@dataclass
class Share:
    share_id: str
    actor: str
    ts: int
    parent: str | None
    #: distinct recipients other than the sharer
    recipients: int


@dataclass
class Purchase:
    actor: str
    ts: int
    units: int  # the amount in 10**-8 currency units
    referral: str | None


@dataclass
class Grant:
    """The deciding permission event of one (grantee, purpose, channel)."""

    grantee: str
    purpose: str
    channel: str
    granted: bool
    expires_at: int | None
    occurred_at: int
    event_id: str


@dataclass
class History:
    """Everything the tables are made of, as of a cutoff."""

    #: identifier -> (occurred_at, event_id) of the first event naming it
    first_seen: dict[str, tuple[int, str]] = field(default_factory=dict)
    #: identifier pair (sorted) -> whether the latest identify/unlink of it is an identify
    links: dict[tuple[str, str], bool] = field(default_factory=dict)
    #: identifier -> day -> what it did (``DONE``)
    done: dict[str, dict[int, Counter[str]]] = field(default_factory=dict)
    #: identifier -> day -> what it received from others (``RECEIVED``)
    received: dict[str, dict[int, Counter[str]]] = field(default_factory=dict)
    #: (from, to) identifier -> day -> ties by kind (``TIE_KINDS``)
    ties: dict[tuple[str, str], dict[int, Counter[str]]] = field(default_factory=dict)
    shares: dict[str, Share] = field(default_factory=dict)
    purchases: list[Purchase] = field(default_factory=list)
    #: identifier -> its grants, the latest per (grantee, purpose, channel)
    grants: dict[str, dict[tuple[str, str, str], Grant]] = field(default_factory=dict)

    def linked(self) -> list[tuple[str, str]]:
        return sorted(pair for pair, exists in self.links.items() if exists)


def fold(events: Iterable[AnyEvent], cutoff: int) -> History:
    """The history of the (already deduplicated) events that occurred at or before cutoff."""
    history = History()
    ordered = sorted(events, key=lambda e: (timestamp_micros(e.occurred_at), e.event_id))
    for event in ordered:
        ts = timestamp_micros(event.occurred_at)
        if ts > cutoff:
            break
        _fold_one(history, event, ts)
    return history


def _fold_one(history: History, event: AnyEvent, ts: int) -> None:
    day = day_of(ts)
    for identifier in event.identifiers():
        history.first_seen.setdefault(identifier.key, (ts, event.event_id))
    actor = event.actor.key
    history.done.setdefault(actor, {}).setdefault(day, Counter())[event.type] += 1

    def receive(target: str, kind: str, tie: str) -> None:
        if target != actor:
            history.received.setdefault(target, {}).setdefault(day, Counter())[kind] += 1
            history.ties.setdefault((actor, target), {}).setdefault(day, Counter())[tie] += 1

    if isinstance(event, IdentifyEvent):  # identify, and unlink (its subclass)
        pair = (min(actor, event.link.key), max(actor, event.link.key))
        history.links[pair] = event.type == "identify"
    elif isinstance(event, ShareEvent):
        if event.content_owner is not None:
            receive(event.content_owner.key, "share", "share")
        recipients = sorted({r.key for r in event.recipients or ()} - {actor})
        for recipient in recipients:
            receive(recipient, "recipient", "recipient")
        share = Share(event.event_id, actor, ts, event.parent_share_id, len(recipients))
        history.shares[share.share_id] = share
    elif isinstance(event, CommentEvent):
        if event.content_owner is not None:
            receive(event.content_owner.key, "comment", "comment")
        if event.reply_to is not None:
            receive(event.reply_to.key, "reply", "reply")
    elif isinstance(event, PurchaseEvent):
        purchase = Purchase(actor, ts, event.amount_units, event.referral_share_id)
        history.purchases.append(purchase)
    elif isinstance(event, PermissionEvent):
        expires = None if event.expires_at is None else timestamp_micros(event.expires_at)
        grant = Grant(
            event.grantee, event.purpose, event.channel, event.granted, expires, ts, event.event_id
        )
        scope = (grant.grantee, grant.purpose, grant.channel)
        history.grants.setdefault(actor, {})[scope] = grant
