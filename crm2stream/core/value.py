"""Individual value: consumption (RFM and decayed spend), popularity, social value.

Each identifier carries four exact integer sums (see ``decay``): decayed spend, decayed
interactions received, decayed reach of its shares and their re-share cascades, and
decayed revenue those shares referred. A person's value is the sum over their
identifiers, mapped to 0-100 points per component and combined into a composite and a
tier. The sums are kept up to date as events arrive (so the latest scores cost O(members)
to read) and can be recomputed from the day buckets for any earlier as-of day; both ways
give the same integers.

Social credit along re-share chains is described in ``social``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from crm2stream.core.config import CoreConfig
from crm2stream.core.decay import CREDIT_FX, WEIGHT_FX
from crm2stream.core.events import AMOUNT_DECIMALS, AMOUNT_SCALE
from crm2stream.core.facts import Facts
from crm2stream.core.layout import (
    AMOUNT,
    BUCKET_WIDTH,
    PURCHASES,
    R_SHARE,
    S_CONSUMPTION,
    S_POPULARITY,
    S_REACH,
    S_REVENUE,
)
from crm2stream.core.social import social_sums

_FOUR_PLACES = Decimal("0.0001")


def round4(value: float) -> float:
    return round(value, 4)


def merged_days(facts: Facts, members: tuple[str, ...], last_day: int) -> dict[int, list[int]]:
    """Day buckets of all members summed, days up to ``last_day`` only, sorted by day."""
    merged: dict[int, list[int]] = {}
    for key in members:
        for day, bucket in facts.idents[key].buckets():
            if day > last_day:
                continue
            total = merged.get(day)
            if total is None:
                merged[day] = bucket
            else:
                for i in range(BUCKET_WIDTH):
                    total[i] += bucket[i]
    return dict(sorted(merged.items()))


def rfm(days: dict[int, list[int]], as_of_day: int) -> dict[str, float | int] | None:
    """RFM in the customer-base-analysis convention (purchases merged per day)."""
    purchase_days = [(day, b[AMOUNT]) for day, b in days.items() if b[PURCHASES] > 0]
    if not purchase_days:
        return None
    first_day = purchase_days[0][0]
    repeat = purchase_days[1:]
    monetary = Decimal(0)
    if repeat:
        total = Decimal(sum(units for _, units in repeat)).scaleb(-AMOUNT_DECIMALS)
        monetary = (total / len(repeat)).quantize(_FOUR_PLACES, rounding=ROUND_HALF_EVEN)
    return {
        "frequency": len(repeat),
        "recency": purchase_days[-1][0] - first_day,
        "T": as_of_day - first_day,
        "monetary_value": float(monetary),
    }


def ident_sums(facts: Facts, key: str, as_of_day: int, cutoff: int) -> list[int]:
    """An identifier's four sums from its facts, counting only what happened by cutoff."""
    scales = facts.scales
    received = scales.received
    consumption = popularity = 0
    for day, b in facts.idents[key].buckets():
        if day > as_of_day:
            continue
        weight = scales.weight(day)
        consumption += b[AMOUNT] * weight
        popularity += (
            received[0] * b[R_SHARE]
            + received[1] * b[R_SHARE + 1]
            + received[2] * b[R_SHARE + 2]
            + received[3] * b[R_SHARE + 3]
        ) * weight
    reach, revenue = social_sums(facts, key, cutoff)
    return [consumption, popularity, reach, revenue]


@dataclass(frozen=True, slots=True)
class Value:
    consumption: float
    popularity: float
    reach: float
    referred_revenue: float
    social: float
    composite: float
    tier: str

    def as_row(self) -> dict[str, float | str]:
        return {
            "consumption": round4(self.consumption),
            "popularity": round4(self.popularity),
            "social": round4(self.social),
            "reach": round4(self.reach),
            "referred_revenue": round4(self.referred_revenue),
            "composite": self.composite,
            "tier": self.tier,
        }


def _points(raw: float, scale: float) -> float:
    return 100.0 * (1.0 - 0.5 ** (raw / scale)) if raw > 0 else 0.0


def value_of(
    facts: Facts, members: tuple[str, ...], as_of_day: int, cutoff: int, cfg: CoreConfig
) -> Value:
    """A person's value as of a day; the kept sums serve when nothing is to be left out."""
    latest = facts.max_ts is None or cutoff >= facts.max_ts
    if latest and len(members) == 1:
        totals = facts.idents[members[0]].sums
    else:
        totals = [0, 0, 0, 0]
        for key in members:
            sums = facts.idents[key].sums if latest else ident_sums(facts, key, as_of_day, cutoff)
            for i in range(4):
                totals[i] += sums[i]
    scales = facts.scales
    consumption = scales.value(totals[S_CONSUMPTION], 0, as_of_day) / AMOUNT_SCALE
    popularity = scales.value(totals[S_POPULARITY], WEIGHT_FX, as_of_day)
    reach = scales.value(totals[S_REACH], CREDIT_FX, as_of_day)
    revenue = scales.value(totals[S_REVENUE], CREDIT_FX, as_of_day) / AMOUNT_SCALE
    social = cfg.reach_weight * reach + cfg.referred_revenue_weight * revenue
    w_c, w_p, w_s = cfg.weights
    composite = (
        w_c * _points(consumption, cfg.consumption_scale)
        + w_p * _points(popularity, cfg.popularity_scale)
        + w_s * _points(social, cfg.social_scale)
    ) / (w_c + w_p + w_s)
    composite = round4(composite)
    return Value(consumption, popularity, reach, revenue, social, composite, cfg.tier_of(composite))
