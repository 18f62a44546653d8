"""The live tables, as of any UTC day, and their digest.

Tables are projections of the facts: a person-keyed view is computed from the connected
components as of the day's end and the day buckets of their members. Rows are produced
one at a time, so exporting or digesting a large table streams.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson

from crm2stream.core.config import CoreConfig
from crm2stream.core.consent import consent_of
from crm2stream.core.events import format_micros
from crm2stream.core.facts import Facts
from crm2stream.core.identity import Partition, Person, linked_at
from crm2stream.core.interactions import end_of_day, interaction_counts, relationship_rows
from crm2stream.core.labels import label
from crm2stream.core.layout import DAY_US
from crm2stream.core.value import merged_days, rfm, value_of

#: The state tables, in digest order. Change streams and the dead-letter table are not
#: state: they depend on arrival order and on the bytes received.
STATE_TABLES = (
    "persons",
    "identity",
    "interactions",
    "relationships",
    "rfm",
    "scores",
    "permissions",
)

Row = dict[str, Any]


def latest_day(facts: Facts) -> int | None:
    return None if facts.max_ts is None else facts.max_ts // DAY_US


class TableView:
    """Every state table as it stands with only the events up to the end of ``as_of_day``."""

    def __init__(self, facts: Facts, cfg: CoreConfig, as_of_day: int) -> None:
        self.facts = facts
        self.cfg = cfg
        self.as_of_day = as_of_day
        self.cutoff = end_of_day(as_of_day)
        self.partition = Partition(facts, self.cutoff, cfg.id_key)

    def rows(self, table: str) -> Iterator[Row]:
        producer: Callable[[], Iterator[Row]] | None = getattr(
            self, "_" + table.replace("-", "_"), None
        )
        if table not in STATE_TABLES or producer is None:
            raise KeyError(f"unknown state table {table!r}")
        return producer()

    def _persons(self) -> Iterator[Row]:
        for person in self.partition.persons:
            yield person_row(person, self.cfg)

    def _identity(self) -> Iterator[Row]:
        linked: dict[str, list[str]] = {}
        for (a, b), history in self.facts.pairs.items():
            if linked_at(history, self.cutoff):
                linked.setdefault(a, []).append(b)
                linked.setdefault(b, []).append(a)
        person_of = self.partition.person_of
        for key in sorted(person_of):
            yield identity_row(self.facts, key, person_of[key], linked.get(key, ()))

    def _interactions(self) -> Iterator[Row]:
        for person in self.partition.persons:
            yield interactions_row(self.facts, person, self.as_of_day, self.cfg)

    def _relationships(self) -> Iterator[Row]:
        yield from relationship_rows(self.facts, self.partition, self.as_of_day, self.cfg)

    def _rfm(self) -> Iterator[Row]:
        for person in self.partition.persons:
            row = rfm_row(self.facts, person, self.as_of_day, self.cfg)
            if row is not None:
                yield row

    def _scores(self) -> Iterator[Row]:
        for person in self.partition.persons:
            yield scores_row(self.facts, person, self.as_of_day, self.cfg)

    def _permissions(self) -> Iterator[Row]:
        for person in self.partition.persons:
            yield from permission_rows(self.facts, person, self.cutoff, self.cfg)

    def digest(self) -> str:
        """SHA-256 over every state table's canonical rows: equal for equal event sets."""
        return digest_tables(self.rows)


def digest_tables(rows_of: Callable[[str], Iterable[Row]]) -> str:
    """SHA-256 over every state table's rows in canonical JSON, whichever core made them."""
    hasher = hashlib.sha256()
    for table in STATE_TABLES:
        hasher.update(b"#" + table.encode() + b"\n")
        for row in rows_of(table):
            hasher.update(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))
            hasher.update(b"\n")
    return hasher.hexdigest()


# -- one person's rows: shared by the table view and the table topics (``publication``) --
# A person's days are recomputed per table rather than cached: cheap, and a digest of
# millions of persons then holds one person's days at a time.


def head(person: Person, cfg: CoreConfig) -> Row:
    """What every person-keyed row starts with: the person id and its label."""
    return {"person_id": person.person_id, "label": label(person.anchor, cfg.raw_labels)}


def person_row(person: Person, cfg: CoreConfig) -> Row:
    """A person: its id, its label and how many identifiers it holds (which ones is the
    identity table's business)."""
    return {**head(person, cfg), "members": len(person.members)}


def identity_row(facts: Facts, key: str, person: Person, linked: Iterable[str]) -> Row:
    first_ts, first_event = facts.idents[key].first
    return {
        "identifier": key,
        "person_id": person.person_id,
        "anchor": person.anchor,
        "first_seen": format_micros(first_ts),
        "first_event_id": first_event,
        "linked": sorted(linked),
    }


def interactions_row(facts: Facts, person: Person, as_of_day: int, cfg: CoreConfig) -> Row:
    days = merged_days(facts, person.members, as_of_day)
    return {**head(person, cfg), **interaction_counts(days, as_of_day)}


def rfm_row(facts: Facts, person: Person, as_of_day: int, cfg: CoreConfig) -> Row | None:
    row = rfm(merged_days(facts, person.members, as_of_day), as_of_day)
    return None if row is None else {**head(person, cfg), **row}


def scores_row(facts: Facts, person: Person, as_of_day: int, cfg: CoreConfig) -> Row:
    value = value_of(facts, person.members, as_of_day, end_of_day(as_of_day), cfg)
    return {**head(person, cfg), **value.as_row()}


def permission_rows(facts: Facts, person: Person, cutoff: int, cfg: CoreConfig) -> list[Row]:
    return [
        {
            **head(person, cfg),
            "grantee": grant.grantee,
            "purpose": grant.purpose,
            "channel": grant.channel,
            "granted": grant.granted,
            "active": grant.active_at(cutoff),
            "expires_at": None if grant.expires_at is None else format_micros(grant.expires_at),
            "occurred_at": format_micros(grant.occurred_at),
            "event_id": grant.event_id,
        }
        for grant in consent_of(facts, person.members, cutoff)
    ]
