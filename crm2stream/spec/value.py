"""What a person is worth: RFM, and the decayed consumption, popularity and social value.

Decay: an amount on day ``d`` counts ``2 ** ((d - D) / h)`` as of day ``D`` (``h`` the
half-life). It is computed as ``core.decay`` defines it: every amount times an exact integer
day weight, summed as integers, and converted to a float once, so a sum does not depend on
the order of its terms.

Social value: a share credits its sharer with its recipients, and the sharer of each
ancestor share at depth ``k`` (up to ``cascade_depth``) with ``cascade_credit ** k`` of its
recipients plus one (the re-sharer reached); a purchase referring a share sends its amount
up the same chain. Each identifier is credited once per share, at the nearest ancestor it
authored.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from crm2stream.core.config import CoreConfig
from crm2stream.core.decay import CREDIT_FX, WEIGHT_FX, Scales
from crm2stream.core.events import AMOUNT_DECIMALS, AMOUNT_SCALE
from crm2stream.spec.history import RECEIVED, History, Share, day_of
from crm2stream.spec.persons import Person


def rfm(history: History, person: Person, as_of_day: int) -> dict[str, Any] | None:
    """RFM in the customer-base-analysis convention, purchases merged per UTC day;
    None for a person who never bought."""
    members = set(person.members)
    spent: dict[int, int] = {}
    for purchase in history.purchases:
        if purchase.actor in members:
            day = day_of(purchase.ts)
            spent[day] = spent.get(day, 0) + purchase.units
    if not spent:
        return None
    days = sorted(spent)
    repeat = days[1:]
    monetary = Decimal(0)
    if repeat:
        total = Decimal(sum(spent[day] for day in repeat)).scaleb(-AMOUNT_DECIMALS)
        monetary = (total / len(repeat)).quantize(Decimal("0.0001"), rounding=ROUND_HALF_EVEN)
    return {
        "frequency": len(repeat),
        "recency": days[-1] - days[0],
        "T": as_of_day - days[0],
        "monetary_value": float(monetary),
    }


def credited(history: History, share: Share, depth_limit: int) -> dict[str, int]:
    """identifier -> the depth at which a share credits it: its sharer at 0, then the
    sharer of each ancestor share not credited nearer, while the chain of shares exists."""
    depth_of: dict[str, int] = {}
    seen: set[str] = set()
    current: Share | None = share
    depth = 0
    while current is not None and depth <= depth_limit and current.share_id not in seen:
        seen.add(current.share_id)
        depth_of.setdefault(current.actor, depth)
        current = history.shares.get(current.parent) if current.parent is not None else None
        depth += 1
    return depth_of


def scores(history: History, person: Person, as_of_day: int, cfg: CoreConfig) -> dict[str, Any]:
    scales = Scales.of(cfg)
    weight = scales.weight
    members = set(person.members)
    consumption = sum(
        p.units * weight(day_of(p.ts)) for p in history.purchases if p.actor in members
    )
    popularity = 0
    for member in members:
        for day, counts in history.received.get(member, {}).items():
            for kind, weight_fx in zip(RECEIVED, scales.received, strict=True):
                popularity += counts[kind] * weight_fx * weight(day)
    reach = revenue = 0
    referred: dict[str, list[tuple[int, int]]] = {}
    for purchase in history.purchases:
        if purchase.referral is not None:
            referred.setdefault(purchase.referral, []).append((purchase.ts, purchase.units))
    for share in history.shares.values():
        for identifier, depth in credited(history, share, cfg.cascade_depth).items():
            if identifier not in members:
                continue
            credit = scales.credit[depth]
            reach += (share.recipients + (depth > 0)) * credit * weight(day_of(share.ts))
            for ts, units in referred.get(share.share_id, ()):
                revenue += units * credit * weight(day_of(ts))

    consumption_v = scales.value(consumption, 0, as_of_day) / AMOUNT_SCALE
    popularity_v = scales.value(popularity, WEIGHT_FX, as_of_day)
    reach_v = scales.value(reach, CREDIT_FX, as_of_day)
    revenue_v = scales.value(revenue, CREDIT_FX, as_of_day) / AMOUNT_SCALE
    social_v = cfg.reach_weight * reach_v + cfg.referred_revenue_weight * revenue_v
    w_c, w_p, w_s = cfg.weights
    composite = (
        w_c * points(consumption_v, cfg.consumption_scale)
        + w_p * points(popularity_v, cfg.popularity_scale)
        + w_s * points(social_v, cfg.social_scale)
    ) / (w_c + w_p + w_s)
    composite = round(composite, 4)
    return {
        "consumption": round(consumption_v, 4),
        "popularity": round(popularity_v, 4),
        "social": round(social_v, 4),
        "reach": round(reach_v, 4),
        "referred_revenue": round(revenue_v, 4),
        "composite": composite,
        "tier": cfg.tier_of(composite),
    }


def points(raw: float, scale: float) -> float:
    """0-100 points: ``scale`` earns 50, twice as much 75, and so on."""
    return 100.0 * (1.0 - 0.5 ** (raw / scale)) if raw > 0 else 0.0
