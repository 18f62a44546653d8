"""The facts every table is derived from, and what one event does to them.

Facts are kept at the level whose meaning never changes: per identifier and per UTC day
(exact integer counters), per identifier pair (the history of identify/unlink), per share.
Persons are not stored: they are connected components computed when read, so merges and
splits are exact, and every fact is an order-independent merge (integer sums, minima,
histories sorted by (occurred_at, event_id)). The same set of events therefore gives the
same facts in any arrival order.
"""

from __future__ import annotations

from array import array
from bisect import insort
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from crm2stream.core.decay import Scales
from crm2stream.core.events import (
    AnyEvent,
    CommentEvent,
    IdentifyEvent,
    PermissionEvent,
    PurchaseEvent,
    ShareEvent,
    timestamp_micros,
)
from crm2stream.core.layout import (
    AMOUNT,
    BUCKET_WIDTH,
    DAY_US,
    DONE,
    E_COMMENT,
    E_RECIPIENT,
    E_REPLY,
    E_SHARE,
    EDGE_WIDTH,
    PURCHASES,
    R_COMMENT,
    R_RECIPIENT,
    R_REPLY,
    R_SHARE,
    S_CONSUMPTION,
    S_POPULARITY,
    S_REACH,
    S_REVENUE,
)
from crm2stream.core.social import credit_chain, recompute_chain

DAY_WIDTH = 1 + BUCKET_WIDTH
_EMPTY_BUCKET = (0,) * BUCKET_WIDTH
EDGE_OF_RECEIVED = {
    R_SHARE: E_SHARE,
    R_COMMENT: E_COMMENT,
    R_REPLY: E_REPLY,
    R_RECIPIENT: E_RECIPIENT,
}

#: (occurred_at micros, event_id): the total order of event time.
EventKey = tuple[int, str]
#: (ts, event_id, linked): one identify (True) or unlink (False) of a pair.
LinkEntry = tuple[int, str, bool]
#: (ts, event_id, granted, expires micros or None)
ConsentEntry = tuple[int, str, bool, int | None]
ConsentKey = tuple[str, str, str]


@dataclass(slots=True)
class Share:
    actor: str
    ts: int
    parent: str | None
    recipients: int


@dataclass(slots=True)
class IdentFacts:
    """Everything known about one identifier."""

    first: EventKey
    #: day buckets, flat and in day order: [day, c0 .. c11, day, c0 .. c11, ...] in one
    #: list, since most identifiers are active on a handful of days
    days: list[int] = field(default_factory=list)
    #: ties to other identifiers: target -> flat [day, reply, comment, share, recipient, day, ...]
    out: dict[str, list[int]] = field(default_factory=dict)
    shares: list[str] = field(default_factory=list)
    consent: dict[ConsentKey, list[ConsentEntry]] = field(default_factory=dict)
    #: log positions of the events naming this identifier, for ``history``
    mentions: array[int] = field(default_factory=lambda: array("q"))
    #: decayed sums as of all events seen: consumption, popularity, reach, revenue
    sums: list[int] = field(default_factory=lambda: [0, 0, 0, 0])

    def slot(self, day: int) -> int:
        """Index in ``days`` of the day's first counter, adding the day if new. Days are
        kept in ascending order; in a stream in event-time order the day is the last one."""
        days = self.days
        at = len(days) - DAY_WIDTH
        if at < 0 or day > days[at]:
            days.append(day)
            days.extend(_EMPTY_BUCKET)
            return at + DAY_WIDTH + 1
        while at >= 0 and days[at] > day:
            at -= DAY_WIDTH
        if at >= 0 and days[at] == day:
            return at + 1
        at += DAY_WIDTH  # insert before the first later day
        days[at:at] = (day, *_EMPTY_BUCKET)
        return at + 1

    def buckets(self) -> Iterator[tuple[int, list[int]]]:
        """(day, counters) of every day bucket, counters as a copy."""
        days = self.days
        for at in range(0, len(days), DAY_WIDTH):
            yield days[at], days[at + 1 : at + DAY_WIDTH]


@dataclass(slots=True)
class Dirty:
    """Keys changed since the last checkpoint, so the shell persists only those."""

    idents: set[str] = field(default_factory=set)
    pairs: set[tuple[str, str]] = field(default_factory=set)
    referrals: set[str] = field(default_factory=set)
    emitted: set[str] = field(default_factory=set)

    def clear(self) -> None:
        self.idents.clear()
        self.pairs.clear()
        self.referrals.clear()
        self.emitted.clear()


@dataclass(slots=True)
class Facts:
    scales: Scales
    idents: dict[str, IdentFacts] = field(default_factory=dict)
    pairs: dict[tuple[str, str], list[LinkEntry]] = field(default_factory=dict)
    shares: dict[str, Share] = field(default_factory=dict)
    #: share_id -> [(ts, amount units)] of purchases it referred; may name a share not yet seen
    referrals: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    max_ts: int | None = None
    #: person_id -> (composite, tier) of the last score-change record
    last_emitted: dict[str, tuple[float, str]] = field(default_factory=dict)
    # derived indexes, rebuilt by ``reindex`` after loading
    adjacency: dict[str, set[str]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    dirty: Dirty = field(default_factory=Dirty)
    #: identifiers whose person's value may have changed in the current batch
    touched: set[str] = field(default_factory=set)
    #: identifier -> its current person (see ``identity.current_person``)
    person_cache: dict[str, Any] = field(default_factory=dict)
    #: identifiers whose person's table rows changed since the last publication, and
    #: those among them whose person may have been regrouped (a link or an anchor moved);
    #: see ``publication``
    unpublished: set[str] = field(default_factory=set)
    regrouped: set[str] = field(default_factory=set)
    #: the anchors of the persons the table topics hold: None until derived after a load
    published_anchors: set[str] | None = field(default_factory=set)
    #: ties (source, target identifier) changed since the last publication, and per
    #: person id the persons its relationship records in the table topic reach (derived
    #: after a load with the anchors); see ``publication``
    changed_ties: set[tuple[str, str]] = field(default_factory=set)
    published_ties: dict[str, set[str]] = field(default_factory=dict)

    def reindex(self) -> None:
        """Rebuild the derived indexes from the stored facts."""
        self.adjacency = {}
        for (a, b), history in self.pairs.items():
            if history[-1][2]:
                self.adjacency.setdefault(a, set()).add(b)
                self.adjacency.setdefault(b, set()).add(a)
        self.children = {}
        for share_id in sorted(self.shares):
            parent = self.shares[share_id].parent
            if parent is not None:
                self.children.setdefault(parent, []).append(share_id)

    def receive(
        self, named: dict[str, IdentFacts], actor: str, target: str, day: int, kind: int
    ) -> None:
        """``actor`` did something to ``target`` (``kind``: one of the ``R_*`` counters):
        popularity for the target, a tie from the actor to the target."""
        if target == actor:
            return
        receiver = named[target]
        receiver.days[receiver.slot(day) + kind] += 1
        scales = self.scales
        receiver.sums[S_POPULARITY] += scales.received[kind - R_SHARE] * scales.weight(day)
        self.touched.add(target)
        self.changed_ties.add((actor, target))
        ties = named[actor].out.get(target)
        field = 1 + EDGE_OF_RECEIVED[kind]
        if ties is None:
            ties = named[actor].out[target] = [day, 0, 0, 0, 0]
        else:
            for at in range(0, len(ties), EDGE_WIDTH):
                if ties[at] == day:
                    ties[at + field] += 1
                    return
            ties.extend((day, 0, 0, 0, 0))
        ties[-EDGE_WIDTH + field] += 1

    def forget_person(self, key: str) -> None:
        """Drop the cached person of ``key`` (and so of all its members)."""
        person = self.person_cache.pop(key, None)
        if person is not None:
            for member in person.members:
                self.person_cache.pop(member, None)


def apply(facts: Facts, event: AnyEvent, position: int) -> bool:
    """Apply one valid event; False (and no change) when its event_id was seen before."""
    if event.event_id in facts.seen:
        return False
    facts.seen.add(event.event_id)
    ts = timestamp_micros(event.occurred_at)
    day = ts // DAY_US
    at = (ts, event.event_id)
    if facts.max_ts is None or ts > facts.max_ts:
        facts.max_ts = ts

    named: dict[str, IdentFacts] = {}
    idents, dirty = facts.idents, facts.dirty.idents
    for ident in event.identifiers():
        key = ident.key
        if key in named:
            continue
        node = idents.get(key)
        if node is None:
            node = idents[key] = IdentFacts(first=at)
        elif at < node.first:
            node.first = at  # the person's anchor, so its id, may change
            facts.forget_person(key)
            facts.touched.add(key)
            facts.regrouped.add(key)
        dirty.add(key)
        facts.unpublished.add(key)
        node.mentions.append(position)
        named[key] = node
    actor_key = event.actor.key
    actor = named[actor_key]
    actor.days[actor.slot(day) + DONE[event.type]] += 1

    if isinstance(event, IdentifyEvent):  # identify and unlink
        link_key = event.link.key
        _link(facts, actor_key, link_key, (ts, event.event_id, event.type == "identify"))
        facts.forget_person(actor_key)
        facts.forget_person(link_key)
        facts.touched.add(actor_key)
        facts.touched.add(link_key)
        facts.regrouped.add(actor_key)
        facts.regrouped.add(link_key)
    elif isinstance(event, ShareEvent):
        _share(facts, event, actor_key, ts, named)
    elif isinstance(event, CommentEvent):
        if event.content_owner is not None:
            owner = event.content_owner.key
            facts.receive(named, actor_key, owner, day, R_COMMENT)
        if event.reply_to is not None:
            replied = event.reply_to.key
            facts.receive(named, actor_key, replied, day, R_REPLY)
    elif isinstance(event, PurchaseEvent):
        units = event.amount_units
        slot = actor.slot(day)
        actor.days[slot + PURCHASES] += 1
        actor.days[slot + AMOUNT] += units
        actor.sums[S_CONSUMPTION] += units * facts.scales.weight(day)
        facts.touched.add(actor_key)
        if event.referral_share_id is not None:
            sid = event.referral_share_id
            insort(facts.referrals.setdefault(sid, []), (ts, units))
            facts.dirty.referrals.add(sid)
            if sid in facts.shares:
                credit_chain(facts, sid, S_REVENUE, units, units, ts // DAY_US)
    elif isinstance(event, PermissionEvent):
        expires = None if event.expires_at is None else timestamp_micros(event.expires_at)
        scope = (event.grantee, event.purpose, event.channel)
        insort(actor.consent.setdefault(scope, []), (ts, event.event_id, event.granted, expires))
    return True


def _link(facts: Facts, a: str, b: str, entry: LinkEntry) -> None:
    pair = (a, b) if a < b else (b, a)
    history = facts.pairs.setdefault(pair, [])
    insort(history, entry)
    facts.dirty.pairs.add(pair)
    first, second = pair
    if history[-1][2]:
        facts.adjacency.setdefault(first, set()).add(second)
        facts.adjacency.setdefault(second, set()).add(first)
    else:
        facts.adjacency.get(first, set()).discard(second)
        facts.adjacency.get(second, set()).discard(first)


def _share(
    facts: Facts, event: ShareEvent, actor: str, ts: int, named: dict[str, IdentFacts]
) -> None:
    day = ts // DAY_US
    if event.content_owner is not None:
        facts.receive(named, actor, event.content_owner.key, day, R_SHARE)
    recipients = {r.key: None for r in event.recipients or ()}
    recipients.pop(actor, None)
    for recipient in recipients:
        facts.receive(named, actor, recipient, day, R_RECIPIENT)
    sid = event.event_id
    share = facts.shares[sid] = Share(actor, ts, event.parent_share_id, len(recipients))
    named[actor].shares.append(sid)
    if event.parent_share_id is not None:
        insort(facts.children.setdefault(event.parent_share_id, []), sid)
    if sid in facts.children or sid in facts.referrals:
        # Re-shares or referred purchases arrived before this share: the credit they owe
        # up the chain was left pending. Recompute the chain above them in full.
        recompute_chain(facts, sid)
    else:
        n = share.recipients
        credit_chain(facts, sid, S_REACH, n, n + 1, day)


def rebuild_sums(facts: Facts) -> None:
    """Recompute every identifier's decayed sums from the facts (after a settings change)."""
    from crm2stream.core.value import ident_sums  # value reads facts; facts never needs it

    for key, ident in facts.idents.items():
        ident.sums = ident_sums(facts, key, 1 << 40, 1 << 62)
        facts.dirty.idents.add(key)
