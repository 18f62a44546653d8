"""Interaction counts per person (by type, by kind received, in rolling windows) and the
relationships between persons (who interacts with whom, and how strongly)."""

from __future__ import annotations

from typing import Any

from crm2stream.core.decay import WEIGHT_FX
from crm2stream.core.facts import Facts
from crm2stream.core.identity import Partition
from crm2stream.core.layout import DAY_US, DONE, EDGE_KINDS, RECEIVED
from crm2stream.core.value import round4

WINDOWS = (("last_1d", 1), ("last_7d", 7), ("last_30d", 30))
_DONE_TYPES = tuple(DONE)


def _counts(total: list[int]) -> dict[str, dict[str, int]]:
    return {
        "done": {kind: total[i] for i, kind in enumerate(_DONE_TYPES)},
        "received": {kind: total[6 + i] for i, kind in enumerate(RECEIVED)},
    }


def interaction_counts(days: dict[int, list[int]], as_of_day: int) -> dict[str, Any]:
    """All-time totals and rolling windows: a window of N days holds the days D with
    ``as_of_day - N < D <= as_of_day``. ``days`` must already exclude days after as-of."""
    totals = {"total": [0] * 10} | {name: [0] * 10 for name, _ in WINDOWS}
    for day, bucket in days.items():
        for name, width in (("total", None), *WINDOWS):
            if width is not None and day <= as_of_day - width:
                continue
            into = totals[name]
            for i in range(10):
                into[i] += bucket[i]
    return {name: _counts(values) for name, values in totals.items()}


def relationship_rows(facts: Facts, partition: Partition, as_of_day: int) -> list[dict[str, Any]]:
    """Ordered person pairs with interaction counts per kind and a decayed tie strength."""
    pairs: dict[tuple[str, str], dict[int, list[int]]] = {}
    person_of = partition.person_of
    for source, ident in facts.idents.items():
        if not ident.out or source not in person_of:
            continue
        source_id = person_of[source].person_id
        for target, per_day in ident.out.items():
            target_person = person_of.get(target)
            if target_person is None or target_person.person_id == source_id:
                continue
            merged = pairs.setdefault((source_id, target_person.person_id), {})
            for day, counts in per_day.items():
                if day > as_of_day:
                    continue
                into = merged.setdefault(day, [0, 0, 0, 0])
                for i in range(4):
                    into[i] += counts[i]
    anchors = {p.person_id: p.anchor for p in partition.persons}
    scales = facts.scales
    rows = []
    for (source_id, target_id), per_day in sorted(pairs.items()):
        if not per_day:
            continue
        counts = [0, 0, 0, 0]
        strength = 0
        for day, day_counts in per_day.items():
            tie = sum(w * c for w, c in zip(scales.ties, day_counts, strict=True))
            strength += tie * scales.weight(day)
            for i in range(4):
                counts[i] += day_counts[i]
        rows.append(
            {
                "from_person_id": source_id,
                "to_person_id": target_id,
                "from_anchor": anchors[source_id],
                "to_anchor": anchors[target_id],
                "counts": dict(zip(EDGE_KINDS, counts, strict=True)),
                "strength": round4(scales.value(strength, WEIGHT_FX, as_of_day)),
            }
        )
    return rows


def end_of_day(day: int) -> int:
    """The last microsecond of a UTC day: the inclusive cutoff of an as-of day."""
    return (day + 1) * DAY_US - 1
