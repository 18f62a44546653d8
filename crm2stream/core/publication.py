"""Table topics: the state tables as change streams a subscriber can follow.

A publication carries, for every person whose rows changed since the last one, that
person's current record in each table topic, as of the latest event time. Records are
keyed by person id (``identity`` by identifier) and carry everything the table holds about
the key: the permission rows of a person and the relationships from a person travel as
one list. A merge or a split changes which person an identifier's facts count for, and a
record that replaces its predecessor whole leaves nothing stale behind; a person id that no
longer exists gets a tombstone (value null) in every person-keyed topic.

Why the scope is exact. Let a person id P have been published with anchor A. P stops
existing only when a link or an anchor of its component changed; every person that then
holds a former member of P contains an identifier the change touched, so it is in the
scope, and A is among its members without being its anchor. So: for every member of a
person in the scope that was the anchor of a published person and no longer is, retire
``person_id_of(member)``. The published anchors need no storage: after a publication they
are exactly the anchors of all current persons, which a load recomputes.

A regrouped person changes the relationships *into* it too: the persons whose members have
ties to its members republish their relationships record.

The engine publishes at every checkpoint, so after a load nothing is unpublished.
"""

from __future__ import annotations

from collections.abc import Iterable
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
    done: int = 0


def derive_published_anchors(facts: Facts, id_key: bytes) -> None:
    """After a load: the anchors the table topics hold are those of the current persons."""
    if facts.published_anchors is None:
        persons = Partition(facts, 1 << 62, id_key).persons
        facts.published_anchors = {person.anchor for person in persons}


def begin(facts: Facts, cfg: CoreConfig) -> Publication | None:
    """Decide what the next publication carries, and consider it published."""
    unpublished = sorted(facts.unpublished)
    facts.unpublished.clear()
    regrouped, facts.regrouped = facts.regrouped, set()
    if facts.max_ts is None or not unpublished:
        return None
    anchors = facts.published_anchors
    assert anchors is not None, "derive_published_anchors first"
    persons: dict[str, Person] = {}
    covered: set[str] = set()
    for key in unpublished:
        if key not in covered:
            person = current_person(facts, key, cfg.id_key)
            persons[person.person_id] = person
            covered.update(person.members)
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
    moment = facts.max_ts
    return Publication(format_micros(moment), moment // DAY_US, items)


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
                out[table].append((person_id, None))
            continue
        assert person is not None
        relationships = relationships_from(facts, person, person_of, day, cfg)
        out["relationships"].append((person_id, relationships or None))
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
