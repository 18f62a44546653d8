"""Score changes and marketing triggers: what subscribers react to.

After each batch, every person whose facts the batch touched is valued as of the stream's
latest event time. A change record is emitted when the tier moves, or the composite moves
by at least ``score_change_delta``, since the last record for that person (a new person
starts from composite 0 in the lowest tier). A change is also a marketing trigger when, and
only when, the person holds an unexpired ``marketing`` permission at that moment.
"""

from __future__ import annotations

from typing import Any

from crm2stream.core.config import CoreConfig
from crm2stream.core.consent import consent_of, marketing_grants
from crm2stream.core.events import format_micros
from crm2stream.core.facts import Facts
from crm2stream.core.identity import current_person
from crm2stream.core.interactions import end_of_day
from crm2stream.core.labels import label
from crm2stream.core.layout import DAY_US
from crm2stream.core.value import round4, value_of

Row = dict[str, Any]


def score_changes(facts: Facts, cfg: CoreConfig) -> tuple[list[Row], list[Row]]:
    """(score changes, marketing triggers) for the persons touched since the last call."""
    facts.unpublished |= facts.touched
    if not facts.touched or facts.max_ts is None:
        facts.touched.clear()
        return [], []
    moment = facts.max_ts
    day = moment // DAY_US
    cutoff = end_of_day(day)
    at = format_micros(moment)
    evaluated: set[str] = set()
    changes: list[Row] = []
    triggers: list[Row] = []
    for key in sorted(facts.touched):
        if key in evaluated:
            continue
        person = current_person(facts, key, cfg.id_key)
        evaluated.update(person.members)
        value = value_of(facts, person.members, day, cutoff, cfg)
        previous = facts.last_emitted.get(person.person_id, (0.0, cfg.lowest_tier))
        moved = abs(value.composite - previous[0]) >= cfg.score_change_delta
        if value.tier == previous[1] and not moved:
            continue
        facts.last_emitted[person.person_id] = (value.composite, value.tier)
        facts.dirty.emitted.add(person.person_id)
        change = {
            "person_id": person.person_id,
            "label": label(person.anchor, cfg.raw_labels),
            "at": at,
            "composite": value.composite,
            "tier": value.tier,
            "previous_composite": previous[0],
            "previous_tier": previous[1],
            "consumption": round4(value.consumption),
            "popularity": round4(value.popularity),
            "social": round4(value.social),
        }
        changes.append(change)
        grants = marketing_grants(consent_of(facts, person.members, moment), moment)
        if grants:
            triggers.append(
                {
                    "person_id": person.person_id,
                    "label": label(person.anchor, cfg.raw_labels),
                    "at": at,
                    "composite": value.composite,
                    "tier": value.tier,
                    "previous_tier": previous[1],
                    "grants": grants,
                }
            )
    facts.touched.clear()
    return changes, triggers
