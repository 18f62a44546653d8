"""The two implementations of the core behind one interface, so an engine can run either.

``native`` (the default) is the compiled core in ``native/``: the lines it can vouch for
are decoded, applied and valued without the interpreter, and it asks the reference decoder
about every other line. ``python`` is the reference core in ``crm2stream/core``: the
readable definition of every table. The conformance suite holds both to the same digests.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

from crm2stream import _native
from crm2stream.core import publication
from crm2stream.core.changes import score_changes
from crm2stream.core.config import CoreConfig
from crm2stream.core.decay import Scales
from crm2stream.core.events import timestamp_micros
from crm2stream.core.facts import Facts, apply, rebuild_sums
from crm2stream.core.flat import decode_flat
from crm2stream.core.identity import Partition, current_component
from crm2stream.core.tables import STATE_TABLES, TableView
from crm2stream.core.validation import Rejection, decode, too_far_ahead
from crm2stream.engine import codec, segments

Row = dict[str, Any]
CoreName = Literal["native", "python"]
CORES: tuple[CoreName, ...] = ("native", "python")


@dataclass(slots=True)
class Processed:
    """What one batch did: rejections (index, reason, error), duplicates (index, event_id),
    how many lines it held, how many events it accepted and their ids as a JSON array, in
    input order."""

    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    duplicates: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0
    accepted: int = 0
    accepted_ids: bytes = b"[]"


class Core(Protocol):
    name: CoreName

    @property
    def max_ts(self) -> int | None: ...
    def process(self, chunk: bytes, start: int, arrival: int | None = None) -> Processed:
        """Apply a log chunk: non-empty lines joined by newlines, the first at ``start``;
        ``arrival`` (microseconds since the epoch), when the log recorded one, is when
        they arrived: an event dated too far after it is rejected (``too_far_ahead``)."""
        ...

    def score_changes(
        self, change_base: int, trigger_base: int
    ) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        """(score changes, marketing triggers) since the last call: each as (count, NDJSON),
        the records numbered with their offsets from the bases given."""
        ...

    def begin_publication(self) -> int:
        """Decide what the next table-topic publication carries (see ``publication``) and
        consider it published; the number of items it holds (0: nothing changed)."""
        ...

    def publish(self, bases: list[int], limit: int) -> list[tuple[int, bytes]]:
        """The next ``limit`` items of the publication begun: per state table (in
        ``STATE_TABLES`` order) the records as (count, NDJSON), numbered from the bases."""
        ...

    def checkpoint(self, full: bool) -> list[bytes]:
        """The records of the facts changed since the last call (of every fact when
        ``full``) as checkpoint segment parts (see ``segments``)."""
        ...

    def reserve(self, events: int) -> None:
        """A hint: this many more events are coming (a replay knows)."""
        ...

    def load(self, parts: list[bytes], seen: Iterable[str], max_ts: int | None) -> None:
        """Load checkpoint segment parts (oldest first), the accepted event ids and the
        latest event time."""
        ...

    def rebuild_sums(self) -> None: ...
    def rows(self, table: str, as_of_day: int) -> Iterator[Row]: ...
    def digest(self, as_of_day: int) -> str:
        """SHA-256 of every state table as of a day (see ``tables.digest_tables``)."""
        ...

    def mentions(self, keys: Iterable[str]) -> list[int]: ...
    def component(self, key: str) -> set[str] | None: ...
    def person_members(self, person_id: str, as_of_day: int) -> set[str] | None: ...


def _ndjson(rows: list[Row], base: int) -> tuple[int, bytes]:
    numbered = (orjson.dumps({"offset": base + i, **row}) for i, row in enumerate(rows))
    return len(rows), b"\n".join(numbered)


def make_core(name: CoreName, cfg: CoreConfig) -> Core:
    if name == "native":
        return NativeCore(cfg)
    if name == "python":
        return PythonCore(cfg)
    raise ValueError(f"unknown core {name!r}; choose from {', '.join(CORES)}")


class NativeCore:
    name: CoreName = "native"

    def __init__(self, cfg: CoreConfig) -> None:
        scales = Scales.of(cfg)
        self.cfg = cfg
        self._core = _native.Core(
            currency=cfg.currency,
            id_key=cfg.id_key,
            half_life=cfg.half_life_days,
            received=scales.received,
            ties=scales.ties,
            credit=list(scales.credit),
            cascade_depth=cfg.cascade_depth,
            consumption_scale=cfg.consumption_scale,
            popularity_scale=cfg.popularity_scale,
            social_scale=cfg.social_scale,
            reach_weight=cfg.reach_weight,
            referred_revenue_weight=cfg.referred_revenue_weight,
            weights=cfg.weights,
            tiers=[(tier.name, tier.min_composite) for tier in cfg.tiers],
            delta=cfg.score_change_delta,
            future_tolerance=cfg.future_tolerance_seconds,
            raw_labels=cfg.raw_labels,
        )
        currency = cfg.currency
        self._fallback = lambda line: decode_flat(line, currency)

    @property
    def max_ts(self) -> int | None:
        value: int | None = self._core.max_ts
        return value

    def process(self, chunk: bytes, start: int, arrival: int | None = None) -> Processed:
        return Processed(*self._core.process(chunk, start, self._fallback, arrival))

    def score_changes(
        self, change_base: int, trigger_base: int
    ) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        return self._core.score_changes(change_base, trigger_base)

    def begin_publication(self) -> int:
        return self._core.begin_publication()

    def publish(self, bases: list[int], limit: int) -> list[tuple[int, bytes]]:
        return self._core.publish(bases, limit)

    def checkpoint(self, full: bool) -> list[bytes]:
        return self._core.checkpoint(full)

    def reserve(self, events: int) -> None:
        self._core.reserve(events)

    def load(self, parts: list[bytes], seen: Iterable[str], max_ts: int | None) -> None:
        self._core.load(parts)
        self._core.finish_load(list(seen), max_ts)

    def rebuild_sums(self) -> None:
        self._core.rebuild_sums()

    def rows(self, table: str, as_of_day: int) -> Iterator[Row]:
        return iter(self._core.rows(table, as_of_day))

    def digest(self, as_of_day: int) -> str:
        return self._core.digest(as_of_day)

    def mentions(self, keys: Iterable[str]) -> list[int]:
        positions: list[int] = self._core.mentions(list(keys))
        return positions

    def component(self, key: str) -> set[str] | None:
        members = self._core.component(key)
        return None if members is None else set(members)

    def person_members(self, person_id: str, as_of_day: int) -> set[str] | None:
        members = self._core.person_members(person_id, as_of_day)
        return None if members is None else set(members)


class PythonCore:
    name: CoreName = "python"

    def __init__(self, cfg: CoreConfig) -> None:
        self.cfg = cfg
        self.facts = Facts(Scales.of(cfg))
        self._publication: publication.Publication | None = None

    @property
    def max_ts(self) -> int | None:
        return self.facts.max_ts

    def process(self, chunk: bytes, start: int, arrival: int | None = None) -> Processed:
        publication.derive_published(self.facts, self.cfg)
        lines = chunk.split(b"\n") if chunk else []
        # The facts are millions of long-lived, acyclic containers: a cyclic collection
        # pass in the middle of a batch costs more than the batch. Collect between batches.
        gc.disable()
        try:
            out = Processed(lines=len(lines))
            accepted: list[str] = []
            for index, line in enumerate(lines):
                result = decode(line, self.cfg.currency)
                if not isinstance(result, Rejection) and arrival is not None:
                    ts = timestamp_micros(result.occurred_at)
                    tolerance = self.cfg.future_tolerance_seconds
                    result = too_far_ahead(ts, arrival, tolerance) or result
                if isinstance(result, Rejection):
                    out.rejected.append((index, result.reason, result.error))
                elif apply(self.facts, result, start + index):
                    accepted.append(result.event_id)
                else:
                    out.duplicates.append((index, result.event_id))
            out.accepted, out.accepted_ids = len(accepted), orjson.dumps(accepted)
            return out
        finally:
            gc.freeze()
            gc.enable()

    def score_changes(
        self, change_base: int, trigger_base: int
    ) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        changes, triggers = score_changes(self.facts, self.cfg)
        return _ndjson(changes, change_base), _ndjson(triggers, trigger_base)

    def begin_publication(self) -> int:
        self._publication = publication.begin(self.facts, self.cfg)
        return 0 if self._publication is None else len(self._publication.items)

    def publish(self, bases: list[int], limit: int) -> list[tuple[int, bytes]]:
        pub = self._publication
        if pub is None:
            return [(0, b"")] * len(STATE_TABLES)
        records = publication.render(self.facts, self.cfg, pub, limit)
        out = [
            publication.ndjson(records[t], pub.at, b)
            for t, b in zip(STATE_TABLES, bases, strict=True)
        ]
        if pub.done >= len(pub.items):
            self._publication = None
        return out

    def checkpoint(self, full: bool) -> list[bytes]:
        facts = self.facts
        dirty = facts.dirty
        idents = facts.idents if full else dirty.idents
        pairs = facts.pairs if full else dirty.pairs
        shares = facts.referrals if full else dirty.referrals
        persons = facts.last_emitted if full else dirty.emitted
        out = [(b"i", key.encode(), codec.encode_ident(facts, key)) for key in idents]
        out += [(b"p", *codec.encode_pair(facts, pair)) for pair in pairs]
        out += [(b"r", s.encode(), codec.encode_referrals(facts, s)) for s in shares]
        out += [(b"e", p.encode(), codec.encode_emitted(facts, p)) for p in persons]
        dirty.clear()
        return segments.frame(out)

    def reserve(self, events: int) -> None:
        pass  # Python's sets grow well enough

    def load(self, parts: list[bytes], seen: Iterable[str], max_ts: int | None) -> None:
        records = segments.read(parts)
        gc.disable()  # millions of long-lived containers: collecting while building is waste
        try:
            facts = self.facts
            for key, data in records.get(b"i", []):
                codec.decode_ident(facts, key.decode(), data)
            for key, data in records.get(b"p", []):
                codec.decode_pair(facts, key, data)
            for key, data in records.get(b"r", []):
                codec.decode_referrals(facts, key.decode(), data)
            for key, data in records.get(b"e", []):
                codec.decode_emitted(facts, key.decode(), data)
            facts.max_ts = max_ts
            facts.seen.update(seen)
            facts.reindex()
            facts.published_anchors = None  # derived before the next event is applied
        finally:
            gc.freeze()
            gc.enable()

    def rebuild_sums(self) -> None:
        rebuild_sums(self.facts)

    def rows(self, table: str, as_of_day: int) -> Iterator[Row]:
        return TableView(self.facts, self.cfg, as_of_day).rows(table)

    def digest(self, as_of_day: int) -> str:
        return TableView(self.facts, self.cfg, as_of_day).digest()

    def mentions(self, keys: Iterable[str]) -> list[int]:
        idents = self.facts.idents
        return sorted({p for key in keys if key in idents for p in idents[key].mentions})

    def component(self, key: str) -> set[str] | None:
        return current_component(self.facts, key) if key in self.facts.idents else None

    def person_members(self, person_id: str, as_of_day: int) -> set[str] | None:
        from crm2stream.core.interactions import end_of_day

        partition = Partition(self.facts, end_of_day(as_of_day), self.cfg.id_key)
        person = next((p for p in partition.persons if p.person_id == person_id), None)
        return None if person is None else set(person.members)
