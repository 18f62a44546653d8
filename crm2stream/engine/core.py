"""The compiled core behind the interface the engines call.

The incremental core is compiled (``native/``): the lines it can vouch for are decoded,
applied and valued without the interpreter, and it asks the reference decoder (the
pydantic models, ``core.validation``) about every other line. What every table it keeps
means is ``crm2stream.spec``, which the tests hold it to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from crm2stream import _native
from crm2stream.core.config import CoreConfig
from crm2stream.core.decay import Scales
from crm2stream.core.flat import decode_flat
from crm2stream.core.tables import Row

#: What the core raises for a checkpoint record it cannot read (damaged, or written by a
#: version it does not know): a ValueError.
CorruptRecord = _native.CorruptRecord

#: Persons per write when publishing the table topics: bounds the memory a publication
#: of every person (the end of a bulk ingest) takes. What a write holds while it is made
#: (the members' bodies decoded whole, the records, their copies in the WriteBatch and
#: the memtable) stays in the allocators after it: a publication after 200,000 events on
#: the bench's 10M directory peaked 410 MiB above its start in writes of 5,000 persons,
#: 151 MiB in writes of 1,000, and took no longer (``docs/performance.md``).
PUBLISH_ITEMS = 1_000
#: Store keys of replaced bodies per list handed to the shell (``checkpoint_stale``).
STALE_KEYS = 10_000
#: Persons (identifiers, for the identity table) per page of a table read or a digest.
ROWS_PAGE = 20_000


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


class Core:
    """One incremental core: every fact of the events applied so far, and the tables."""

    def __init__(self, cfg: CoreConfig, *, indexes: bool = False) -> None:
        """``indexes``: collect what ``take_indexes`` hands out (an engine with a store
        that keeps them)."""
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
            indexes=indexes,
        )
        currency = cfg.currency
        self._fallback = lambda line: decode_flat(line, currency)

    @property
    def max_ts(self) -> int | None:
        """The latest event time applied, in microseconds (None before any event)."""
        value: int | None = self._core.max_ts
        return value

    def process(
        self,
        chunk: bytes,
        start: int,
        arrival: int | None = None,
        known: Callable[[list[str]], list[bool]] | None = None,
    ) -> Processed:
        """Apply a log chunk: non-empty lines joined by newlines, the first at ``start``;
        ``arrival`` (microseconds since the epoch), when the log recorded one, is when
        they arrived: an event dated too far after it is rejected (``too_far_ahead``).
        ``known``, when given, says which of the chunk's event ids were accepted before
        (asked once per chunk; the core then keeps no ids of its own); without it the core
        remembers every id it accepts."""
        return Processed(*self._core.process(chunk, start, self._fallback, arrival, known))

    def take_indexes(self) -> tuple[list[bytes], list[tuple[bytes, bool]]]:
        """The keyed indexes of the events applied since the last call, as store keys
        (``engine.store``): a key per identifier an accepted event names and its log
        position, and both directions of every link whose history changed, with whether
        it stands now."""
        return self._core.take_indexes()

    def score_changes(
        self, change_base: int, trigger_base: int
    ) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        """(score changes, marketing triggers) since the last call: each as (count, NDJSON),
        the records numbered with their offsets from the bases given."""
        return self._core.score_changes(change_base, trigger_base)

    def begin_publication(self) -> int:
        """Decide what the next table-topic publication carries (``docs/architecture.md``) and
        consider it published; the number of items it holds (0: nothing changed)."""
        return self._core.begin_publication()

    @property
    def unpublished(self) -> int:
        """How many identifiers' table rows changed since the last publication."""
        value: int = self._core.unpublished
        return value

    def publish(self, bases: list[int], limit: int) -> list[tuple[int, bytes]]:
        """The next ``limit`` items of the publication begun: per state table (in
        ``STATE_TABLES`` order) the records as (count, NDJSON), numbered from the bases."""
        return self._core.publish(bases, limit)

    def checkpoint_parts(self, full: bool) -> Iterator[bytes]:
        """The records of the facts changed since the last checkpoint (of every fact when
        ``full``) as checkpoint segment parts (see ``segments``), rendered one at a time:
        a checkpoint of everything holds one part in memory. The facts are the ones at the
        call; applying a batch before the last part abandons the checkpoint, and the next
        one writes every fact. Once the last part is taken, nothing is dirty: writing
        the parts is the caller's (a core with a store attached checkpoints by number,
        ``begin_keyed_checkpoint``)."""
        self._core.begin_checkpoint(full)
        while (part := self._core.checkpoint_part()) is not None:
            yield part
        self._core.end_checkpoint(True)

    def checkpoint(self, full: bool) -> list[bytes]:
        """``checkpoint_parts``, all at once (a changelog record holds them together)."""
        return list(self.checkpoint_parts(full))

    def begin_keyed_checkpoint(self, full: bool, seq: int) -> None:
        """Begin checkpoint number ``seq`` of a core with a store attached: the dirty
        bodies are ``checkpoint_bodies``, store writes of their own; then the segment's
        ``checkpoint_segment``; then ``checkpoint_stale`` and ``end_checkpoint``."""
        self._core.begin_checkpoint(full, seq)

    def checkpoint_bodies(self) -> Iterator[list[tuple[bytes, bytes]]]:
        """The dirty bodies of the checkpoint begun, as (store key, record), a few MB at a
        time."""
        while (bodies := self._core.checkpoint_bodies()) is not None:
            yield bodies

    def checkpoint_segment(self) -> Iterator[bytes]:
        """The segment parts of the checkpoint begun."""
        while (part := self._core.checkpoint_part()) is not None:
            yield part

    def checkpoint_stale(self, limit: int = STALE_KEYS) -> Iterator[list[bytes]]:
        """The store keys of the bodies the checkpoint begun replaces, ``limit`` at a
        time: delete them in the write that commits it."""
        while (keys := self._core.checkpoint_stale(limit)) is not None:
            yield keys

    def end_checkpoint(self, committed: bool) -> None:
        """End the checkpoint begun: ``committed`` once the write that makes it the
        checkpoint landed; otherwise what it held is dirty again, and the next checkpoint
        writes every fact."""
        self._core.end_checkpoint(committed)

    def attach_store(self, fetch: Callable[[list[bytes]], list[bytes | None]], budget: int) -> None:
        """Keep identifier bodies in a store: the core asks ``fetch(keys)`` for those a
        call needs and does not hold (once per call), and ``evict`` keeps those in memory
        to about ``budget`` bytes between calls."""
        self._core.attach_store(fetch, budget)

    def keep_published_ties(self, fetch: Callable[[list[bytes]], list[bytes | None]]) -> None:
        """Keep each person's published ties (the persons its relationship records
        name) in a store rather than in memory: a publication asks ``fetch(keys)`` for
        those of the persons it renders, and ``take_published_keys`` hands back what it
        wrote, with the anchor of each person it rendered (``n/<person id>``). Call it
        before ``load``: a load then derives no ties from the bodies."""
        self._core.keep_published_ties(fetch)

    def take_published_keys(self) -> list[tuple[bytes, bytes | None]]:
        """The published ties and anchors the publication wrote since the last call, as
        (store key, record, or None: delete the key), to write with the records
        ``publish`` gave."""
        return self._core.take_published_keys()

    def evict(self, ahead: int) -> list[tuple[bytes, bytes]]:
        """Keep the cache's budget after a batch or a committed checkpoint: clean bodies
        beyond it are dropped, and dirty ones returned as (store key, record) under
        ``ahead``, the number of the next checkpoint, to write with the batch (the core
        reads them back from there until that checkpoint commits them)."""
        return self._core.evict(ahead)

    def footprint(self) -> list[tuple[str, int, int]]:
        """What the core's memory holds: (structure, entries, approximate bytes), largest
        first; lengths and capacities, not the allocator's view."""
        return self._core.footprint()

    def measure_by_dropping(self) -> list[tuple[str, int]] | None:
        """What each structure holds, exactly: dropped one by one, with the bytes the
        allocator got back (with ``CRM2STREAM_COUNT_ALLOCATIONS`` set as the core loaded;
        None without). The core holds nothing after it: for the end of a measurement."""
        return self._core.measure_by_dropping()

    @property
    def resident(self) -> int:
        """How many identifier bodies are in memory."""
        value: int = self._core.resident
        return value

    def load(
        self, parts: Iterable[bytes], seen: Iterable[list[str]] = (), max_ts: int | None = None
    ) -> None:
        """Load checkpoint segment parts (oldest first), the accepted event ids the core
        keeps (a list per batch; none when the engine keeps its own index) and the latest
        event time. Parts and ids are taken one at a time, so loading holds the facts and
        one part, not every stored segment besides."""
        for part in parts:
            self._core.load_part(part)
        for ids in seen:
            self._core.add_seen(ids)
        self._core.finish_load(max_ts)

    def rebuild_sums(self) -> None:
        """Recompute every decayed sum from the facts (the value settings changed)."""
        self._core.rebuild_sums()

    def rows(self, table: str, as_of_day: int) -> Iterator[Row]:
        """A state table's rows as of a day, sorted by key, read a page of persons at a
        time: with a store attached, only a page's bodies are in memory at once, and only
        a page's rows here. Applying a chunk, a digest or another read before the last
        page ends this one: its next page is an error, never another read's rows."""
        read = self._core.begin_rows(table, as_of_day)
        while (page := self._core.next_rows(read, ROWS_PAGE)) is not None:
            yield from page

    def digest(self, as_of_day: int) -> str:
        """SHA-256 over every state table's rows as of a day, in canonical JSON: equal for
        equal event sets (``docs/tables.md``)."""
        return self._core.digest(as_of_day, ROWS_PAGE)

    def person_members(self, person_id: str, as_of_day: int) -> set[str] | None:
        members = self._core.person_members(person_id, as_of_day)
        return None if members is None else set(members)
