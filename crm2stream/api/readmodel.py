"""The API's read model: what it knows, it learnt from the output topics.

It applies table-topic records (the latest value per key wins; a null value deletes the
key), keeps the recent score changes, marketing triggers and dead letters, each person's
last score change, and, from the input log, a summary of each accepted event under every
identifier it names (a view shows the last few). It never reads an engine's state, so it
works the same over the embedded engine's local topics and over Kafka topics.

What it keeps per key lives in a RocksDB of its own (``path``): in memory it holds
RocksDB's buffers and a few counts, not the rows. Topics that keep their numbering across
runs (the embedded engine's, named by an id that a replay in place changes) let the next
server resume the model where it was; Kafka topics, which the API numbers as it receives
them, have it rebuilt at every start. A table record is stored as the bytes it came as,
and only the records whose fields the model indexes (identity, scores, change streams)
are parsed. Besides the tables it keeps three indexes there: each person's identifiers,
each person's relationships (under the source person, so one prefix holds them), and the
leaderboard, ordered by (-composite, person id), in all and per tier.
"""

from __future__ import annotations

import fcntl
import heapq
import logging
import shutil
import struct
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

import orjson
from rocksdict import (
    Rdict,
    RdictIter,
    WriteBatch,
    WriteOptions,
)

from crm2stream._native import fast_decode
from crm2stream.core.events import format_micros
from crm2stream.core.flat import FlatEvent, flatten
from crm2stream.core.tables import PERSON_TABLES, Row
from crm2stream.core.validation import Rejection, decode
from crm2stream.engine.compaction import split_record
from crm2stream.engine.host import EngineUnavailable
from crm2stream.engine.store import modest_options

log = logging.getLogger("crm2stream.api")

#: The topics the read model follows, in the order it applies a round of them: tables
#: before the change streams that name their persons.
TABLES = ("identity", *PERSON_TABLES)
STREAMS = ("score-changes", "marketing-triggers", "dlq")
FOLLOWED = (*TABLES, *STREAMS)
#: Recent records kept of each change stream, and events kept per identifier.
RECENT = 200
EVENTS_PER_IDENTIFIER = 10

# Key prefixes. A separator byte below every character a key may hold keeps one prefix's
# keys from running into a longer prefix's (``p_1`` before ``p_10``).
_ROW = b"t/"  # t/<table>\0<key> -> the record's value (relationships are under _TIE)
_MEMBER = b"m/"  # m/<person id>\0<identifier> -> b""
_TIE = b"r/"  # r/<from person id>\0<to person id> -> the relationship row
_RANK = b"s/"  # s/<tier or "">\0<rank> -> b"" (rank: -composite, person id)
_CHANGE = b"c/"  # c/<person id> -> the person's last score change
_RECENT = b"n/"  # n/<stream> -> its recent records
_STATE = b"z"  # positions, counts, the topics' id: written with every write
_SEEN = b"d/"  # d/<event id> -> b"": the event ids of lines taken from the log
_EVENTS = b"e/"  # e/<identifier>\0<log position> -> [event id, type, micros, actor]
_SEP = b"\0"
#: What the keys and values above are: a model kept in another format is rebuilt.
_FORMAT = 2
#: A stored value, or None where there is none (a tombstone, a key never seen)
Value = bytes | None


def rank(composite: float, person_id: str) -> bytes:
    """Bytes that sort as (-composite, person id) does: the leaderboard's order."""
    bits = struct.unpack(">Q", struct.pack(">d", -composite + 0.0))[0]
    bits = bits ^ 0xFFFF_FFFF_FFFF_FFFF if bits >> 63 else bits | 1 << 63
    return struct.pack(">Q", bits) + person_id.encode()


class ReadModel:
    def __init__(self, currency: str, path: Path) -> None:
        self.currency = currency
        self.path = path
        self.recent: dict[str, deque[Row]] = {stream: deque(maxlen=RECENT) for stream in STREAMS}
        #: rows per table, and scores per tier
        self.counts: dict[str, int] = dict.fromkeys(TABLES, 0)
        self.tier_counts: Counter[str] = Counter()
        #: per topic (and "events", the input log): the next offset to apply
        self.positions: dict[str, int] = dict.fromkeys((*FOLLOWED, "events"), 0)
        #: the numbering of the topics read (None: the model does not outlive the process)
        self.topics_id: str | None = None
        self._db: Rdict | None = None
        self._lock: IO[bytes] | None = None
        self._unlogged = WriteOptions()
        # A crash loses what was not flushed, the positions with it (one write each):
        # the model resumes from an earlier point of the topics, or is rebuilt.
        self._unlogged.disable_wal = True  # type: ignore[method-assign, assignment]

    def open(self, topics_id: str | None = None, ends: dict[str, int] | None = None) -> None:
        """Resume what a previous server left in ``path`` if it read topics of the same
        ``topics_id`` and no further than their ``ends``; otherwise start from nothing.
        Either way once a lock beside it says no other server is using it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = self.path.with_name(self.path.name + ".lock").open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise EngineUnavailable(
                f"another server keeps its read model in {self.path}: "
                "give this one a data directory of its own"
            ) from None
        self._lock = lock
        self.topics_id = topics_id
        if topics_id is not None and self.path.exists():
            try:
                self._db = Rdict(str(self.path), modest_options())
                if self._resume(ends or {}):
                    return
            except Exception:  # damaged: it is only ever a copy of the topics
                log.warning(
                    "the read model in %s cannot be resumed: building it again",
                    self.path,
                    exc_info=True,
                )
            if self._db is not None:
                self._db.close()
                self._db = None
        shutil.rmtree(self.path, ignore_errors=True)
        self._db = Rdict(str(self.path), modest_options())

    def _resume(self, ends: dict[str, int]) -> bool:
        raw = self.db.get(_STATE)
        state = {} if raw is None else orjson.loads(raw)
        if state.get("format") != _FORMAT or state.get("topics_id") != self.topics_id:
            return False
        positions: dict[str, int] = state["positions"]
        if set(positions) != set(self.positions):
            return False
        if any(at > ends.get(topic, 0) for topic, at in positions.items()):
            return False  # topics behind the model: not the ones it read
        self.positions.update(positions)
        self.counts.update(state["counts"])
        self.tier_counts = Counter(state["tiers"])
        for stream, recent in self.recent.items():
            recent.extend(orjson.loads(self.db.get(_RECENT + stream.encode()) or b"[]"))
        return True

    def close(self) -> None:
        """Keep what can be resumed, remove the rest. (Closing flushes what the memtables
        hold: RocksDB's ``avoid_flush_during_shutdown`` is off.)"""
        if self._db is not None:
            self._db.close()
            self._db = None
            if self.topics_id is None:
                shutil.rmtree(self.path, ignore_errors=True)
        if self._lock is not None:
            self._lock.close()  # and with it the lock
            self._lock = None

    @property
    def db(self) -> Rdict:
        if self._db is None:
            raise RuntimeError("the read model is not open")
        return self._db

    # -- applying ----------------------------------------------------------------------
    def apply(self, topic: str, records: Iterable[tuple[int, bytes]]) -> None:
        """Apply records (offset, JSON) of a topic, in offset order."""
        fresh = [(offset, raw) for offset, raw in records if offset >= self.positions[topic]]
        if not fresh:
            return  # seen already (a resumed read)
        before = (dict(self.counts), Counter(self.tier_counts), dict(self.recent))
        if topic in self.recent:  # appended to in place: its copy is the one kept
            self.recent[topic] = deque(self.recent[topic], RECENT)
        try:
            batch = WriteBatch(raw_mode=True)
            if topic in self.counts:
                self._apply_table(batch, topic, [split_record(raw) for _, raw in fresh])
            else:
                self._apply_stream(batch, topic, fresh)
            self._commit(batch, topic, fresh[-1][0] + 1)
        except BaseException:
            self.counts, self.tier_counts, self.recent = before  # as the store still is
            raise

    def _commit(self, batch: WriteBatch, topic: str, position: int) -> None:
        """Write a batch with the model's state as it stands after it, then take the
        topic's new position."""
        positions = {**self.positions, topic: position}
        state = {
            "format": _FORMAT,
            "topics_id": self.topics_id,
            "positions": positions,
            "counts": self.counts,
            "tiers": self.tier_counts,
        }
        batch.put(_STATE, orjson.dumps(state))
        self.db.write(batch, self._unlogged)
        self.positions[topic] = position

    def _apply_table(
        self, batch: WriteBatch, table: str, changes: list[tuple[str, bytes | None]]
    ) -> None:
        keys = [self._row_key(table, key) for key, _ in changes]
        unique = list(dict.fromkeys(keys))
        known = dict(zip(unique, self._get_many(unique), strict=True))
        for db_key, (key, value) in zip(keys, changes, strict=True):
            before = known[db_key]
            known[db_key] = value
            self.counts[table] += (value is not None) - (before is not None)
            if table == "identity":
                self._move(batch, key, before, value)
            elif table == "scores":
                self._rerank(batch, key, before, value)
            if value is None:
                batch.delete(db_key)
            else:
                batch.put(db_key, value)
        self.tier_counts = +self.tier_counts  # tiers left empty go

    @staticmethod
    def _row_key(table: str, key: str) -> bytes:
        if table == "relationships":
            source, _, target = key.partition(">")
            return _TIE + source.encode() + _SEP + target.encode()
        return _ROW + table.encode() + _SEP + key.encode()

    @staticmethod
    def _move(
        batch: WriteBatch, identifier: str, before: bytes | None, after: bytes | None
    ) -> None:
        """An identity record: the identifier leaves its person, for another one."""
        for value, put in ((before, False), (after, True)):
            if value is None:
                continue
            key = _MEMBER + orjson.loads(value)["person_id"].encode() + _SEP + identifier.encode()
            if put:
                batch.put(key, b"")
            else:
                batch.delete(key)

    def _rerank(
        self, batch: WriteBatch, person_id: str, before: bytes | None, after: bytes | None
    ) -> None:
        """A scores record: the person's place on the leaderboard, in all and in its tier."""
        for value, put in ((before, False), (after, True)):
            if value is None:
                continue
            row = orjson.loads(value)
            place = rank(float(row["composite"]), person_id)
            self.tier_counts[row["tier"]] += 1 if put else -1
            for tier in ("", row["tier"]):
                key = _RANK + tier.encode() + _SEP + place
                if put:
                    batch.put(key, b"")
                else:
                    batch.delete(key)

    def _apply_stream(
        self, batch: WriteBatch, topic: str, records: list[tuple[int, bytes]]
    ) -> None:
        recent = self.recent[topic]
        for offset, raw in records:
            record = orjson.loads(raw)
            record["offset"] = offset  # this feed's number (Kafka's partitions have their own)
            recent.append(record)
            if topic == "score-changes":
                batch.put(_CHANGE + record["person_id"].encode(), orjson.dumps(record))
        batch.put(_RECENT + topic.encode(), orjson.dumps(list(recent)))

    def apply_log(self, start: int, lines: list[bytes]) -> None:
        """Input log lines from position ``start``: the accepted ones become each named
        identifier's recent events (rejected lines are the dead letters' business, and so
        is a line whose event id an earlier line had: the engine takes the first)."""
        events: list[tuple[int, FlatEvent]] = []
        for position, line in enumerate(lines, start):
            if position < self.positions["events"]:
                continue
            flat = fast_decode(line, self.currency)
            if flat is None:  # a line the compiled decoder leaves to the reference one
                event = decode(line, self.currency)
                if isinstance(event, Rejection):
                    continue
                flat = flatten(event)
            events.append((position, flat))
        ids = list(dict.fromkeys(_SEEN + flat[0].encode() for _, flat in events))
        seen = {key for key, held in zip(ids, self._get_many(ids), strict=True) if held is not None}
        batch = WriteBatch(raw_mode=True)
        for position, flat in events:
            event_id, kind, micros, actor, link, owner, reply_to, recipients = flat[:8]
            taken = _SEEN + event_id.encode()
            if taken in seen:
                continue
            seen.add(taken)
            batch.put(taken, b"")
            summary = orjson.dumps((event_id, kind, micros, actor))
            at = _SEP + position.to_bytes(8, "big")
            for ident in {i for i in (actor, link, owner, reply_to, *recipients) if i}:
                batch.put(_EVENTS + ident.encode() + at, summary)
        end = start + len(lines)
        if end > self.positions["events"]:
            self._commit(batch, "events", end)

    def _last_events(self, identifier: str) -> Iterator[Row]:
        """The identifier's last events by log position."""
        prefix = _EVENTS + identifier.encode() + _SEP
        it: RdictIter = self.db.iter()
        it.seek_for_prev(prefix + b"\xff" * 8)
        for _ in range(EVENTS_PER_IDENTIFIER):
            key = cast(bytes, it.key()) if it.valid() else b""
            if not key.startswith(prefix):
                return
            event_id, kind, micros, actor = orjson.loads(cast(bytes, it.value()))
            yield {
                "offset": int.from_bytes(key[len(prefix) :], "big"),
                "event_id": event_id,
                "type": kind,
                "occurred_at": format_micros(micros),
                "actor": actor,
            }
            it.prev()

    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        wanted: list[str | int | float | bytes | bool] = list(keys)
        return cast(list[bytes | None], self.db.get(wanted)) if keys else []

    # -- answering ---------------------------------------------------------------------
    def _row(self, table: str, key: str) -> Any:
        value = self.db.get(self._row_key(table, key))
        return None if value is None else orjson.loads(value)

    def _scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """(key without the prefix, value) of every key under ``prefix``."""
        it: RdictIter = self.db.iter()
        it.seek(prefix)
        while it.valid():
            key = cast(bytes, it.key())
            if not key.startswith(prefix):
                return
            yield key[len(prefix) :], cast(bytes, it.value())
            it.next()

    def person(self, person_id: str) -> Row | None:
        """The single customer view: identifiers, interactions, value, consent, recent
        events, strongest relationships, last score change."""
        person = self._row("persons", person_id)
        if person is None:
            return None
        members = [m.decode() for m, _ in self._scan(_MEMBER + person_id.encode() + _SEP)]
        identity = [self._row("identity", m) for m in members]
        unique = {e["event_id"]: e for m in members for e in self._last_events(m)}
        ties = (orjson.loads(v) for _, v in self._scan(_TIE + person_id.encode() + _SEP))
        change = self.db.get(_CHANGE + person_id.encode())
        return {
            "person_id": person_id,
            "label": person["label"],
            "anchor": identity[0]["anchor"] if identity else None,
            "identifiers": identity,
            "interactions": self._row("interactions", person_id),
            "rfm": self._row("rfm", person_id),
            "scores": self._row("scores", person_id),
            "permissions": self._row("permissions", person_id) or [],
            "relationships": heapq.nsmallest(
                10, ties, key=lambda r: (-r["strength"], r["to_person_id"])
            ),
            "last_score_change": None if change is None else orjson.loads(change),
            "last_events": sorted(unique.values(), key=lambda e: (e["occurred_at"], e["event_id"]))[
                -EVENTS_PER_IDENTIFIER:
            ],
        }

    def person_of(self, identifier: str) -> str | None:
        row = self._row("identity", identifier)
        return None if row is None else str(row["person_id"])

    def leaderboard(self, top: int, tier: str | None = None) -> list[Row]:
        """The top persons by composite score (ties by person id), optionally of one tier."""
        prefix = _RANK + (tier or "").encode() + _SEP
        best: list[str] = []
        if top < 1:
            return []
        for place, _ in self._scan(prefix):
            best.append(place[8:].decode())
            if len(best) == top:
                break
        rows = [self._row("scores", person_id) for person_id in best]
        return [{"rank": place, **row} for place, row in enumerate(rows, 1)]

    def tiers(self) -> dict[str, int]:
        return dict(self.tier_counts)

    def sizes(self) -> dict[str, int]:
        return dict(self.counts)
