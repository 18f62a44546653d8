"""Exponential decay in exact integers, so that rolling scores are order-independent.

A day bucket ``h`` days old (``h`` = half-life) counts half. Rather than decaying floats
(whose sums depend on the order of addition), every amount is multiplied by the integer
``weight(day) = round(2 ** frac(day / h) * 2 ** FX) << floor(day / h)``, i.e. about
``2 ** (day / h)`` in fixed point, and added to an exact integer sum ``S``. The decayed
value as of day ``D`` is ``S * 2 ** (-D / h)``, converted to float once, at read. Integer
sums can be updated one event at a time, in any order, and always give the same ``S``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from crm2stream.core.config import CoreConfig

FX = 48  # fixed-point bits of a day weight
CREDIT_FX = 16  # fixed-point bits of cascade credit
WEIGHT_FX = 8  # fixed-point bits of popularity weights


@dataclass(frozen=True, slots=True)
class Scales:
    """The integer forms of a ``CoreConfig``'s decay, weights and cascade credit."""

    half_life_days: float
    received: tuple[int, int, int, int]
    ties: tuple[int, int, int, int]
    credit: tuple[int, ...]
    cascade_depth: int
    _weights: dict[int, int] = field(default_factory=dict, compare=False, repr=False)
    _days: dict[int, tuple[int, float]] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, cfg: CoreConfig) -> Scales:
        received = tuple(round(w * (1 << WEIGHT_FX)) for w in cfg.received_weights)
        ties = tuple(round(w * (1 << WEIGHT_FX)) for w in cfg.tie_weights)
        credit = tuple(
            round(cfg.cascade_credit**k * (1 << CREDIT_FX)) for k in range(cfg.cascade_depth + 1)
        )
        return cls(
            cfg.half_life_days,
            received,  # type: ignore[arg-type]
            ties,  # type: ignore[arg-type]
            credit,
            cfg.cascade_depth,
        )

    @property
    def fingerprint(self) -> str:
        """Changes whenever stored integer sums would differ: they must then be rebuilt."""
        return f"{FX}/{self.half_life_days!r}/{self.received}/{self.credit}"

    def weight(self, day: int) -> int:
        cached = self._weights.get(day)
        if cached is None:
            ratio = day / self.half_life_days
            whole = math.floor(ratio)
            cached = round(2.0 ** (ratio - whole) * (1 << FX)) << whole
            self._weights[day] = cached
        return cached

    def value(self, total: int, extra_bits: int, as_of_day: int) -> float:
        """The decayed value, as of ``as_of_day``, of a sum of weighted amounts whose
        amounts carry ``extra_bits`` fixed-point bits of their own."""
        if total == 0:
            return 0.0
        day = self._days.get(as_of_day)
        if day is None:
            ratio = as_of_day / self.half_life_days
            whole = math.floor(ratio)
            day = self._days[as_of_day] = (whole, float(2.0 ** (whole - ratio)))
        shift = FX + extra_bits + day[0]
        scaled = total / (1 << shift) if shift >= 0 else float(total * (1 << -shift))
        return scaled * day[1]
