"""Table topics: the state tables as change streams a subscriber can follow.

A publication carries, for every person whose rows changed since the last one, that
person's current record in each table topic, as of the latest event time. Records are
keyed by person id (``identity`` by identifier, ``relationships`` by the pair of person
ids ``from>to``); the permission rows of a person travel as one list. A merge or a split
changes which person an identifier's facts count for, and a record that replaces its
predecessor whole leaves nothing stale behind; a person id that no longer exists gets a
tombstone (value null) in every person-keyed topic.

Relationships are one record per pair, so that no record grows with a person's ties (a
key opinion leader has thousands). A person in the scope writes the pairs whose ties
changed since the last publication, the pairs to or from a regrouped person, and the new
pairs; a pair it no longer has (its ties moved with a split, or its target was retired)
gets a tombstone. Which pairs the topic holds per person (``published_ties``) is kept,
and after a load it is every current pair, as the anchors are.

Why the scope is exact. Let a person id P have been published with anchor A. P stops
existing only when a link or an anchor of its component changed; every person that then
holds a former member of P contains an identifier the change touched, so it is in the
scope, and A is among its members without being its anchor. So: for every member of a
person in the scope that was the anchor of a published person and no longer is, retire
``person_id_of(member)``. The published anchors need no storage: after a publication they
are exactly the anchors of all current persons, which a load recomputes.

A regrouped person changes the relationships *into* it too: the persons whose members have
ties to its members write their pairs into it.

The engine publishes at every checkpoint, so after a load nothing is unpublished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from crm2stream.core.config import CoreConfig
from crm2stream.core.events import format_micros
from crm2stream.core.facts import Facts
from crm2stream.core.identity import Partition, Person, current_person, person_id_of
from crm2stream.core.interactions import end_of_day, relationships_from
from crm2stream.core.layout import DAY_US
from crm2stream.core.tables import (
    STATE_TABLES,
    identity_row,
    interactions_row,
    permission_rows,
    person_row,
    rfm_row,
    scores_row,
)

Row = dict[str, Any]

#: What an item of a publication carries: every table, only a tombstone, or only the
#: relationships (its ties reach a regrouped person).
FULL, RETIRED, LINKS = 0, 1, 2
#: The topics keyed by person id (every state table but identity).
PERSON_TABLES = tuple(table for table in STATE_TABLES if table != "identity")


@dataclass(slots=True)
class Publication:
    at: str
    day: int
    #: (person id, what it carries, the person): sorted by person id
    items: list[tuple[str, int, Person | None]]
    #: per person id, the target identifiers of its ties changed since the last one
    changed: dict[str, set[str]]
    #: the members of the regrouped persons
    moved: set[str]
    done: int = 0


def derive_published(facts: Facts, cfg: CoreConfig) -> None:
    """After a load: the table topics hold the anchors of the current persons and their
    current pairs (the engine publishes at every checkpoint)."""
    if facts.published_anchors is None:
        partition = Partition(facts, 1 << 62, cfg.id_key)
        facts.published_anchors = {person.anchor for person in partition.persons}
        day = (facts.max_ts or 0) // DAY_US
        facts.published_ties = {}
        for person in partition.persons:
            rows = relationships_from(facts, person, partition.person_of.__getitem__, day, cfg)
            if rows:
                facts.published_ties[person.person_id] = {r["to_person_id"] for r in rows}


def begin(facts: Facts, cfg: CoreConfig) -> Publication | None:
    """Decide what the next publication carries, and consider it published."""
    unpublished = sorted(facts.unpublished)
    facts.unpublished.clear()
    regrouped, facts.regrouped = facts.regrouped, set()
    changed_ties, facts.changed_ties = facts.changed_ties, set()
    if facts.max_ts is None or not unpublished:
        return None
    anchors = facts.published_anchors
    assert anchors is not None, "derive_published first"
    persons: dict[str, Person] = {}
    covered: set[str] = set()
    persons_of: dict[str, str] = {}
    for key in unpublished:
        if key not in covered:
            person = current_person(facts, key, cfg.id_key)
            persons[person.person_id] = person
            covered.update(person.members)
            persons_of.update(dict.fromkeys(person.members, person.person_id))
    retired: set[str] = set()
    moved: set[str] = set()
    for person in persons.values():
        if any(member in regrouped for member in person.members):
            moved.update(person.members)
        for member in person.members:
            if member in anchors and member != person.anchor:
                anchors.discard(member)
                retired.add(person_id_of(member, cfg.id_key))
        anchors.add(person.anchor)
    links: dict[str, Person] = {}
    if moved:
        for source, ident in facts.idents.items():
            if source not in covered and not moved.isdisjoint(ident.out):
                person = current_person(facts, source, cfg.id_key)
                links[person.person_id] = person
                covered.update(person.members)
    items: list[tuple[str, int, Person | None]] = [(p, FULL, q) for p, q in persons.items()]
    items += [(p, RETIRED, None) for p in retired]
    items += [(p, LINKS, q) for p, q in links.items()]
    items.sort(key=lambda item: item[0])
    changed: dict[str, set[str]] = {}
    for source, target in changed_ties:  # every source was named, so it is in the scope
        changed.setdefault(persons_of[source], set()).add(target)
    moment = facts.max_ts
    return Publication(format_micros(moment), moment // DAY_US, items, changed, moved)


def render(
    facts: Facts, cfg: CoreConfig, publication: Publication, limit: int
) -> dict[str, list[tuple[str, Any]]]:
    """The (key, value) records of the next ``limit`` items, per table topic."""
    day, cutoff = publication.day, end_of_day(publication.day)
    out: dict[str, list[tuple[str, Any]]] = {table: [] for table in STATE_TABLES}
    chunk = publication.items[publication.done : publication.done + limit]
    publication.done += len(chunk)
    person_of = partial(current_person, facts, id_key=cfg.id_key)
    for person_id, role, person in chunk:
        if role == RETIRED:
            for table in PERSON_TABLES:
                if table != "relationships":
                    out[table].append((person_id, None))
            for target in sorted(facts.published_ties.pop(person_id, ())):
                out["relationships"].append((f"{person_id}>{target}", None))
            continue
        assert person is not None
        out["relationships"] += _pairs(facts, cfg, publication, person, person_of, day)
        if role == LINKS:
            continue
        out["persons"].append((person_id, person_row(person, cfg)))
        adjacency = facts.adjacency
        for key in person.members:
            row = identity_row(facts, key, person, adjacency.get(key, ()))
            out["identity"].append((key, row))
        out["interactions"].append((person_id, interactions_row(facts, person, day, cfg)))
        out["rfm"].append((person_id, rfm_row(facts, person, day, cfg)))
        out["scores"].append((person_id, scores_row(facts, person, day, cfg)))
        out["permissions"].append((person_id, permission_rows(facts, person, cutoff, cfg) or None))
    return out


def _pairs(
    facts: Facts,
    cfg: CoreConfig,
    publication: Publication,
    person: Person,
    person_of: Callable[[str], Person],
    day: int,
) -> list[tuple[str, Any]]:
    """The relationship records a person in the scope writes (see the module docstring),
    by target person id."""
    rows = {r["to_person_id"]: r for r in relationships_from(facts, person, person_of, day, cfg)}
    moved = publication.moved
    regrouped = not moved.isdisjoint(person.members)
    touched = {person_of(t).person_id for t in publication.changed.get(person.person_id, ())}
    for member in () if regrouped else person.members:
        touched.update(person_of(t).person_id for t in facts.idents[member].out if t in moved)
    old = facts.published_ties.get(person.person_id, set())
    out: list[tuple[str, Any]] = []
    for target in sorted(old | rows.keys()):
        key = f"{person.person_id}>{target}"
        if target not in rows:
            out.append((key, None))
        elif regrouped or target in touched or target not in old:
            out.append((key, rows[target]))
    if rows:
        facts.published_ties[person.person_id] = set(rows)
    else:
        facts.published_ties.pop(person.person_id, None)
    return out


def ndjson(records: Iterable[tuple[str, Any]], at: str, base: int) -> tuple[int, bytes]:
    """Table topic records in canonical JSON (sorted keys), numbered from ``base``."""
    lines = [
        orjson.dumps(
            {"at": at, "key": key, "offset": base + i, "value": value},
            option=orjson.OPT_SORT_KEYS,
        )
        for i, (key, value) in enumerate(records)
    ]
    return len(lines), b"\n".join(lines)
