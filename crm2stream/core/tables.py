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

    def _person_days(self, person: Person) -> dict[int, list[int]]:
        # Recomputed per table rather than cached: cheap, and a digest of millions of
        # persons then holds one person's days at a time.
        return merged_days(self.facts, person.members, self.as_of_day)

    def rows(self, table: str) -> Iterator[Row]:
        producer: Callable[[], Iterator[Row]] | None = getattr(
            self, "_" + table.replace("-", "_"), None
        )
        if table not in STATE_TABLES or producer is None:
            raise KeyError(f"unknown state table {table!r}")
        return producer()

    def _persons(self) -> Iterator[Row]:
        for person in self.partition.persons:
            yield {
                "person_id": person.person_id,
                "anchor": person.anchor,
                "identifiers": list(person.members),
            }

    def _identity(self) -> Iterator[Row]:
        linked: dict[str, list[str]] = {}
        for (a, b), history in self.facts.pairs.items():
            if linked_at(history, self.cutoff):
                linked.setdefault(a, []).append(b)
                linked.setdefault(b, []).append(a)
        person_of = self.partition.person_of
        for key in sorted(person_of):
            person = person_of[key]
            first_ts, first_event = self.facts.idents[key].first
            yield {
                "identifier": key,
                "person_id": person.person_id,
                "anchor": person.anchor,
                "first_seen": format_micros(first_ts),
                "first_event_id": first_event,
                "linked": sorted(linked.get(key, ())),
            }

    def _interactions(self) -> Iterator[Row]:
        for person in self.partition.persons:
            yield {
                "person_id": person.person_id,
                "anchor": person.anchor,
                **interaction_counts(self._person_days(person), self.as_of_day),
            }

    def _relationships(self) -> Iterator[Row]:
        yield from relationship_rows(self.facts, self.partition, self.as_of_day)

    def _rfm(self) -> Iterator[Row]:
        for person in self.partition.persons:
            row = rfm(self._person_days(person), self.as_of_day)
            if row is not None:
                yield {"person_id": person.person_id, "anchor": person.anchor, **row}

    def _scores(self) -> Iterator[Row]:
        for person in self.partition.persons:
            value = value_of(self.facts, person.members, self.as_of_day, self.cutoff, self.cfg)
            yield {"person_id": person.person_id, "anchor": person.anchor, **value.as_row()}

    def _permissions(self) -> Iterator[Row]:
        for person in self.partition.persons:
            for grant in consent_of(self.facts, person.members, self.cutoff):
                yield {
                    "person_id": person.person_id,
                    "anchor": person.anchor,
                    "grantee": grant.grantee,
                    "purpose": grant.purpose,
                    "channel": grant.channel,
                    "granted": grant.granted,
                    "active": grant.active_at(self.cutoff),
                    "expires_at": None
                    if grant.expires_at is None
                    else format_micros(grant.expires_at),
                    "occurred_at": format_micros(grant.occurred_at),
                    "event_id": grant.event_id,
                }

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
