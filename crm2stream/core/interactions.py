"""Interaction counts per person (by type, by kind received, in rolling windows) and the
relationships between persons (who interacts with whom, and how strongly)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from crm2stream.core.config import CoreConfig
from crm2stream.core.decay import WEIGHT_FX
from crm2stream.core.facts import Facts
from crm2stream.core.identity import Partition, Person
from crm2stream.core.labels import label
from crm2stream.core.layout import DAY_US, DONE, EDGE_KINDS, EDGE_WIDTH, RECEIVED
from crm2stream.core.value import round4

Row = dict[str, Any]
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
    into_all = totals["total"]
    windows = [(as_of_day - width, totals[name]) for name, width in WINDOWS]
    for day, bucket in days.items():
        counts = bucket[:10]
        for i, n in enumerate(counts):
            into_all[i] += n
        for oldest_excluded, into in windows:
            if day > oldest_excluded:
                for i, n in enumerate(counts):
                    into[i] += n
    return {name: _counts(values) for name, values in totals.items()}


def relationship_rows(
    facts: Facts, partition: Partition, as_of_day: int, cfg: CoreConfig
) -> Iterator[Row]:
    """Ordered person pairs with interaction counts per kind and a decayed tie strength,
    sorted by (from, to) person id."""
    person_of = partition.person_of.get
    for person in partition.persons:
        yield from relationships_from(facts, person, person_of, as_of_day, cfg)


def relationships_from(
    facts: Facts,
    source: Person,
    person_of: Callable[[str], Person | None],
    as_of_day: int,
    cfg: CoreConfig,
) -> list[Row]:
    """The relationships from one person to every person its members' ties reach (as
    ``person_of`` groups them), sorted by target person id.

    Strength is an exact integer sum (see ``decay``) converted once per pair, so it does not
    depend on the order identifiers or days are visited in.
    """
    pairs: dict[str, tuple[Person, list[int]]] = {}
    scales = facts.scales
    weight = scales.weight
    t_reply, t_comment, t_share, t_recipient = scales.ties
    for member in source.members:
        for target, ties in facts.idents[member].out.items():
            target_person = person_of(target)
            if target_person is None or target_person.person_id == source.person_id:
                continue
            held = pairs.get(target_person.person_id)
            if held is None:
                held = pairs[target_person.person_id] = (target_person, [0, 0, 0, 0, 0])
            acc = held[1]
            for at in range(0, len(ties), EDGE_WIDTH):
                day, reply, comment, share, recipient = ties[at : at + EDGE_WIDTH]
                if day > as_of_day:
                    continue
                acc[0] += reply
                acc[1] += comment
                acc[2] += share
                acc[3] += recipient
                tie = t_reply * reply + t_comment * comment + t_share * share
                acc[4] += (tie + t_recipient * recipient) * weight(day)
    return [
        {
            "from_person_id": source.person_id,
            "to_person_id": target_id,
            "from_label": label(source.anchor, cfg.raw_labels),
            "to_label": label(target.anchor, cfg.raw_labels),
            "counts": dict(zip(EDGE_KINDS, acc[:4], strict=True)),
            "strength": round4(scales.value(acc[4], WEIGHT_FX, as_of_day)),
        }
        for target_id, (target, acc) in sorted(pairs.items())
        if any(acc[:4])
    ]


def end_of_day(day: int) -> int:
    """The last microsecond of a UTC day: the inclusive cutoff of an as-of day."""
    return (day + 1) * DAY_US - 1
