"""The API's read model: what it knows, it learnt from the output topics.

It applies table-topic records (the latest value per key wins; a null value deletes the
key), keeps the recent score changes, marketing triggers and dead letters, and the last
few events of each identifier from the input log. It never reads an engine's state, so
it works the same over the embedded engine's local topics and over Kafka topics.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Iterable
from typing import Any

from crm2stream.core.events import format_micros, timestamp_micros
from crm2stream.core.tables import PERSON_TABLES, Row
from crm2stream.core.validation import Rejection, decode

#: The topics the read model follows, in the order it applies a round of them: tables
#: before the change streams that name their persons.
TABLES = ("identity", *PERSON_TABLES)
STREAMS = ("score-changes", "marketing-triggers", "dlq")
FOLLOWED = (*TABLES, *STREAMS)
#: Recent records kept of each change stream, and events kept per identifier.
RECENT = 200
EVENTS_PER_IDENTIFIER = 10


class ReadModel:
    def __init__(self, currency: str) -> None:
        self.currency = currency
        self.tables: dict[str, dict[str, Any]] = {table: {} for table in TABLES}
        self.recent: dict[str, deque[Row]] = {stream: deque(maxlen=RECENT) for stream in STREAMS}
        self.last_change: dict[str, Row] = {}
        #: person id -> its identifiers, from the identity topic (the one place that
        #: names them)
        self.members: dict[str, set[str]] = {}
        #: person id -> the relationships from it, by target person id
        self.ties: dict[str, dict[str, Row]] = {}
        self.events: dict[str, deque[Row]] = {}
        self.dead_letters = 0
        #: per topic (and "events", the input log): the next offset to apply
        self.positions: dict[str, int] = dict.fromkeys((*FOLLOWED, "events"), 0)

    # -- applying ----------------------------------------------------------------------
    def apply(self, topic: str, records: Iterable[Row]) -> None:
        """Apply records of a topic, in offset order."""
        position = self.positions[topic]
        table = self.tables.get(topic)
        for record in records:
            offset = record["offset"]
            if offset < position:
                continue  # seen already (a resumed read)
            position = offset + 1
            if table is not None:
                key, value = record["key"], record["value"]
                if topic == "identity":
                    self._move(key, table.get(key), value)
                elif topic == "relationships":
                    self._tie(key, value)
                if value is None:
                    table.pop(key, None)
                else:
                    table[key] = value
                continue
            self.recent[topic].append(record)
            if topic == "score-changes":
                self.last_change[record["person_id"]] = record
            elif topic == "dlq":
                self.dead_letters += 1
        self.positions[topic] = position

    def apply_log(self, start: int, lines: list[bytes]) -> None:
        """Input log lines from position ``start``: the accepted ones become each named
        identifier's recent events (rejected lines are the dead letters' business)."""
        for position, line in enumerate(lines, start):
            if position < self.positions["events"]:
                continue
            event = decode(line, self.currency)
            if isinstance(event, Rejection):
                continue
            summary = {
                "offset": position,
                "event_id": event.event_id,
                "type": event.type,
                "occurred_at": format_micros(timestamp_micros(event.occurred_at)),
                "actor": event.actor.key,
            }
            for ident in {i.key for i in event.identifiers()}:
                kept = self.events.setdefault(ident, deque(maxlen=EVENTS_PER_IDENTIFIER))
                if all(e["event_id"] != event.event_id for e in kept):  # a re-delivery
                    kept.append(summary)
        self.positions["events"] = max(self.positions["events"], start + len(lines))

    def _move(self, identifier: str, before: Row | None, after: Row | None) -> None:
        """An identity record: the identifier leaves its person, for another one."""
        if before is not None:
            held = self.members.get(before["person_id"])
            if held is not None:
                held.discard(identifier)
                if not held:
                    del self.members[before["person_id"]]
        if after is not None:
            self.members.setdefault(after["person_id"], set()).add(identifier)

    def _tie(self, pair: str, row: Row | None) -> None:
        """A relationships record, keyed ``from>to``."""
        source, _, target = pair.partition(">")
        if row is not None:
            self.ties.setdefault(source, {})[target] = row
            return
        held = self.ties.get(source)
        if held is not None:
            held.pop(target, None)
            if not held:
                del self.ties[source]

    # -- answering ---------------------------------------------------------------------
    def person(self, person_id: str) -> Row | None:
        """The single customer view: identifiers, interactions, value, consent, recent
        events, strongest relationships, last score change."""
        person = self.tables["persons"].get(person_id)
        if person is None:
            return None
        members = sorted(self.members.get(person_id, ()))
        identity = [self.tables["identity"][m] for m in members]
        events = [e for m in members for e in self.events.get(m, ())]
        unique = {e["event_id"]: e for e in events}.values()
        relationships = self.ties.get(person_id, {}).values()
        return {
            "person_id": person_id,
            "label": person["label"],
            "anchor": identity[0]["anchor"] if identity else None,
            "identifiers": identity,
            "interactions": self.tables["interactions"].get(person_id),
            "rfm": self.tables["rfm"].get(person_id),
            "scores": self.tables["scores"].get(person_id),
            "permissions": self.tables["permissions"].get(person_id) or [],
            "relationships": heapq.nlargest(10, relationships, key=lambda r: r["strength"]),
            "last_score_change": self.last_change.get(person_id),
            "last_events": sorted(unique, key=lambda e: (e["occurred_at"], e["event_id"]))[
                -EVENTS_PER_IDENTIFIER:
            ],
        }

    def person_of(self, identifier: str) -> str | None:
        row = self.tables["identity"].get(identifier)
        return None if row is None else str(row["person_id"])

    def leaderboard(self, top: int, tier: str | None = None) -> list[Row]:
        """The top persons by composite score (ties by person id), optionally of one tier."""
        rows: Iterable[Row] = self.tables["scores"].values()
        if tier is not None:
            rows = (row for row in rows if row["tier"] == tier)
        best = heapq.nsmallest(top, rows, key=lambda r: (-r["composite"], r["person_id"]))
        return [{"rank": rank, **row} for rank, row in enumerate(best, 1)]

    def tiers(self) -> dict[str, int]:
        return dict(Counter(row["tier"] for row in self.tables["scores"].values()))

    def sizes(self) -> dict[str, int]:
        return {table: len(rows) for table, rows in self.tables.items()}
