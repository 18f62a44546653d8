"""Social credit along re-share chains, kept as exact integer sums per identifier.

A share credits its own sharer with its recipients, and the sharer of each ancestor share
(at depth k, up to ``cascade_depth``) with ``cascade_credit ** k`` of its recipients plus
one (the re-sharer reached); the revenue of purchases it referred flows up the same way.
Each identifier is credited once per share, at the nearest ancestor it authored. Shares and
purchases may arrive before the shares they name: their credit then waits, and is settled
by recomputing the chain when the missing share arrives, so any order gives the same sums.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crm2stream.core.layout import DAY_US, S_REACH, S_REVENUE

if TYPE_CHECKING:
    from crm2stream.core.facts import Facts


def social_sums(facts: Facts, key: str, cutoff: int) -> tuple[int, int]:
    """(reach, revenue) integer sums earned by one identifier's shares, as of cutoff."""
    scales = facts.scales
    depth_of: dict[str, int] = {}
    frontier = [sid for sid in facts.idents[key].shares if facts.shares[sid].ts <= cutoff]
    for sid in frontier:
        depth_of[sid] = 0
    depth = 0
    while frontier and depth < scales.cascade_depth:
        depth += 1
        following = []
        for sid in frontier:
            for child in facts.children.get(sid, ()):
                if child not in depth_of and facts.shares[child].ts <= cutoff:
                    depth_of[child] = depth
                    following.append(child)
        frontier = following
    reach = revenue = 0
    for sid, k in depth_of.items():
        share = facts.shares[sid]
        credit = scales.credit[k]
        reach += (share.recipients + (k > 0)) * credit * scales.weight(share.ts // DAY_US)
        for ts, units in facts.referrals.get(sid, ()):
            if ts <= cutoff:
                revenue += units * credit * scales.weight(ts // DAY_US)
    return reach, revenue


def ancestors(facts: Facts, share_id: str) -> list[tuple[str, int]]:
    """(actor, depth) of each identifier credited for a share: itself at depth 0, then the
    nearest ancestor share each other identifier authored, up to the cascade depth."""
    credited: dict[str, int] = {}
    visited: set[str] = set()
    current: str | None = share_id
    depth = 0
    while current is not None and depth <= facts.scales.cascade_depth:
        share = facts.shares.get(current)
        if share is None or current in visited:
            break
        visited.add(current)
        credited.setdefault(share.actor, depth)
        current = share.parent
        depth += 1
    return list(credited.items())


def credit_chain(facts: Facts, share_id: str, which: int, own: int, above: int, day: int) -> None:
    """Add ``own`` (to the share's sharer) or ``above`` (to ancestors' sharers) at credit
    ``cascade_credit ** depth`` to sum ``which``."""
    scales = facts.scales
    weight = scales.weight(day)
    for actor, depth in ancestors(facts, share_id):
        amount = own if depth == 0 else above
        if amount:
            facts.idents[actor].sums[which] += amount * scales.credit[depth] * weight
            facts.dirty.idents.add(actor)
            facts.touched.add(actor)


def recompute_chain(facts: Facts, share_id: str) -> None:
    for actor, _ in ancestors(facts, share_id):
        ident = facts.idents[actor]
        ident.sums[S_REACH], ident.sums[S_REVENUE] = social_sums(facts, actor, 1 << 62)
        facts.dirty.idents.add(actor)
        facts.touched.add(actor)
