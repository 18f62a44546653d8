"""The knobs of the value model, as plain immutable data.

The core never reads the environment; the shell builds a ``CoreConfig`` from settings and
hands it in. Every derived table is a pure function of the facts and this config.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Tier:
    name: str
    min_composite: float


DEFAULT_TIERS = (
    Tier("platinum", 75.0),
    Tier("gold", 50.0),
    Tier("silver", 25.0),
    Tier("bronze", 0.0),
)


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """How raw facts become value scores.

    Each component is decayed with ``half_life_days`` (a day bucket that is ``h`` days old
    counts half) and mapped to 0-100 by ``100 * (1 - 2 ** (-x / scale))``: ``scale`` is the
    raw amount that earns 50 points. The composite is the weighted mean of the three.
    """

    currency: str = "CNY"
    id_key: bytes = b""
    half_life_days: float = 30.0
    # consumption: decayed spend in currency units
    consumption_scale: float = 500.0
    # popularity: decayed interactions received, weighted per kind
    popularity_scale: float = 20.0
    received_weights: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 0.5)
    # social: decayed reach of own shares and their re-share cascades, plus referred revenue
    social_scale: float = 50.0
    reach_weight: float = 1.0
    referred_revenue_weight: float = 0.1
    cascade_credit: float = 0.5
    cascade_depth: int = 5
    # relationship strength per interaction kind: reply, comment, share, recipient
    tie_weights: tuple[float, float, float, float] = (2.0, 1.0, 1.0, 0.5)
    weights: tuple[float, float, float] = (0.4, 0.3, 0.3)
    tiers: tuple[Tier, ...] = field(default=DEFAULT_TIERS)
    score_change_delta: float = 5.0
    #: how long after its arrival (as the log records it) an event may be dated: clocks
    #: in the field are wrong, and one far-future event must not move the event-time clock
    future_tolerance_seconds: int = 86_400
    #: label persons with their raw anchor instead of a masked one (see ``labels``)
    raw_labels: bool = False

    def tier_of(self, composite: float) -> str:
        for tier in self.tiers:
            if composite >= tier.min_composite:
                return tier.name
        return self.tiers[-1].name

    @property
    def lowest_tier(self) -> str:
        return self.tiers[-1].name
