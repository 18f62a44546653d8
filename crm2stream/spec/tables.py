"""Every state table as of a UTC day: the tables exactly as they stand with the events up
to the end of that day, links and consent included.

Rows outside the identity table name a person by id and label (its anchor, masked unless
``raw_labels``), never by identifier.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from crm2stream.core.config import CoreConfig
from crm2stream.core.decay import WEIGHT_FX, Scales
from crm2stream.core.events import AnyEvent, format_micros
from crm2stream.core.labels import label
from crm2stream.core.tables import STATE_TABLES, Row
from crm2stream.spec.history import (
    DONE,
    RECEIVED,
    TIE_KINDS,
    Grant,
    History,
    accepted,
    end_of_day,
    fold,
)
from crm2stream.spec.persons import Person, persons
from crm2stream.spec.value import rfm, scores

#: rolling windows: ``last_Nd`` holds the days D with ``as_of - N < D <= as_of``
WINDOWS = (("last_1d", 1), ("last_7d", 7), ("last_30d", 30))


def state_tables(
    arrivals: Iterable[AnyEvent], as_of_day: int, cfg: CoreConfig
) -> dict[str, list[Row]]:
    """Every state table as of ``as_of_day``, from the valid events in arrival order."""
    cutoff = end_of_day(as_of_day)
    history = fold(accepted(arrivals), cutoff)
    everyone = persons(history, cfg.id_key)
    person_of = {member: person for person in everyone for member in person.members}

    def head(person: Person) -> Row:
        return {"person_id": person.person_id, "label": label(person.anchor, cfg.raw_labels)}

    tables: dict[str, list[Row]] = {name: [] for name in STATE_TABLES}
    for person in everyone:
        tables["persons"].append({**head(person), "members": len(person.members)})
        tables["interactions"].append({**head(person), **interactions(history, person, as_of_day)})
        tables["relationships"] += relationships(history, person, person_of, as_of_day, cfg)
        bought = rfm(history, person, as_of_day)
        if bought is not None:
            tables["rfm"].append({**head(person), **bought})
        tables["scores"].append({**head(person), **scores(history, person, as_of_day, cfg)})
        tables["permissions"] += [
            {**head(person), **grant} for grant in permissions(history, person, cutoff)
        ]
    tables["identity"] = identity(history, person_of)
    return tables


def identity(history: History, person_of: dict[str, Person]) -> list[Row]:
    linked: dict[str, list[str]] = {}
    for a, b in history.linked():
        linked.setdefault(a, []).append(b)
        linked.setdefault(b, []).append(a)
    rows = []
    for identifier in sorted(history.first_seen):
        ts, event_id = history.first_seen[identifier]
        person = person_of[identifier]
        rows.append(
            {
                "identifier": identifier,
                "person_id": person.person_id,
                "anchor": person.anchor,
                "first_seen": format_micros(ts),
                "first_event_id": event_id,
                "linked": sorted(linked.get(identifier, [])),
            }
        )
    return rows


def interactions(history: History, person: Person, as_of_day: int) -> Row:
    """What the person's identifiers did and received: all time and per window."""
    row: Row = {}
    for name, width in (("total", None), *WINDOWS):
        done: Counter[str] = Counter()
        received: Counter[str] = Counter()
        for member in person.members:
            for day, counts in history.done.get(member, {}).items():
                if width is None or day > as_of_day - width:
                    done.update(counts)
            for day, counts in history.received.get(member, {}).items():
                if width is None or day > as_of_day - width:
                    received.update(counts)
        row[name] = {
            "done": {kind: done[kind] for kind in DONE},
            "received": {kind: received[kind] for kind in RECEIVED},
        }
    return row


def relationships(
    history: History, source: Person, person_of: dict[str, Person], as_of_day: int, cfg: CoreConfig
) -> list[Row]:
    """From one person to every other person its identifiers have ties to, by target id:
    counts per kind and a decayed strength (reply 2, comment 1, share 1, recipient 0.5)."""
    scales = Scales.of(cfg)
    targets: dict[str, Person] = {}
    counts: dict[str, Counter[str]] = {}
    strength: dict[str, int] = {}
    for (actor, target), days in history.ties.items():
        to = person_of[target]
        if actor not in source.members or to is source:
            continue
        targets[to.person_id] = to
        for day, ties in days.items():
            counts.setdefault(to.person_id, Counter()).update(ties)
            for kind, weight_fx in zip(TIE_KINDS, scales.ties, strict=True):
                tie = ties[kind] * weight_fx * scales.weight(day)
                strength[to.person_id] = strength.get(to.person_id, 0) + tie
    return [
        {
            "from_person_id": source.person_id,
            "to_person_id": to_id,
            "from_label": label(source.anchor, cfg.raw_labels),
            "to_label": label(targets[to_id].anchor, cfg.raw_labels),
            "counts": {kind: counts[to_id][kind] for kind in TIE_KINDS},
            "strength": round(scales.value(strength[to_id], WEIGHT_FX, as_of_day), 4),
        }
        for to_id in sorted(targets)
    ]


def deciding_grants(history: History, person: Person) -> list[Grant]:
    """Per (grantee, purpose, channel), the latest permission event of any member, in
    scope order."""
    deciding: dict[tuple[str, str, str], Grant] = {}
    for member in person.members:
        for scope, grant in history.grants.get(member, {}).items():
            held = deciding.get(scope)
            if held is None or (grant.occurred_at, grant.event_id) > (
                held.occurred_at,
                held.event_id,
            ):
                deciding[scope] = grant
    return [grant for _, grant in sorted(deciding.items())]


def active(grant: Grant, moment: int) -> bool:
    """A grant holds at a moment unless it was a refusal or expired by then."""
    return grant.granted and (grant.expires_at is None or grant.expires_at > moment)


def permissions(history: History, person: Person, cutoff: int) -> list[Row]:
    """What the person allows, per (grantee, purpose, channel), as of the cutoff."""
    return [
        {
            "grantee": grant.grantee,
            "purpose": grant.purpose,
            "channel": grant.channel,
            "granted": grant.granted,
            "active": active(grant, cutoff),
            "expires_at": None if grant.expires_at is None else format_micros(grant.expires_at),
            "occurred_at": format_micros(grant.occurred_at),
            "event_id": grant.event_id,
        }
        for grant in deciding_grants(history, person)
    ]
