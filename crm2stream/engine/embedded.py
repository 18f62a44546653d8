"""The embedded engine: one process, a local event log and rocksdict state.

Each batch of input lines is validated and applied by the core in memory, then written in
one WriteBatch: the raw lines (the log), the event ids they accepted, their output records
(dead letters, score changes, marketing triggers) and the new positions. Every
``checkpoint_events`` events or ``checkpoint_seconds`` (and at the end of every ingest)
a checkpoint (``checkpointing``) writes the facts the core marked dirty with the log
position they stand at, after publishing the table topics' changed rows (``publishing``)
when they are ``followed`` (a server) or an ingest ends. Identifier bodies (day buckets,
ties, consent, sums: what grows with history) are written under their keys, and only
``cache_bytes`` of them stay in memory; the core asks the store for those a batch needs.

On open, the checkpointed facts are loaded and the log chunks after their position are
applied again with the same batch boundaries (``replay``), so the facts and the change
streams come out exactly as if the process had never stopped: ``kill -9`` at any instant
loses nothing and counts nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from crm2stream.core.config import CoreConfig
from crm2stream.core.decay import Scales
from crm2stream.core.events import DAY_US
from crm2stream.core.tables import Row
from crm2stream.core.validation import Rejection
from crm2stream.engine import checkpointing, publishing, replay
from crm2stream.engine.core import Core
from crm2stream.engine.history import events_of, members_of
from crm2stream.engine.lines import batched, file_fingerprint, progress, read_chunks, strip_line
from crm2stream.engine.results import (
    BatchOutput,
    Counts,
    EngineError,
    dead_letter,
    duplicate,
    ndjson,
)
from crm2stream.engine.segments import Segments
from crm2stream.engine.store import Store
from crm2stream.engine.write import Write
from crm2stream.topology import Topology, load_topology

log = logging.getLogger("crm2stream.embedded")

#: Bytes of identifier bodies kept in memory (``cache_bytes``).
CACHE_BYTES = 512 << 20


def _key_check(id_key: bytes) -> str:
    """What a data directory remembers of the key its person ids were made with: an HMAC
    of a constant, which names the key without giving it away."""
    return hmac.new(id_key, b"crm2stream: the id key of this directory", "sha256").hexdigest()[:16]


#: The engine's log positions (attribute: key in the log meta), written with every batch.
_LOG_POSITIONS = {
    "log_end": "log_end",
    "output_ends": "outputs",
    "in_progress": "ingest",
    "replay_end": "replay_end",
    "compacted": "compacted",
    "topics_id": "topics",
}


class EmbeddedEngine:
    def __init__(
        self,
        data_dir: Path,
        cfg: CoreConfig,
        *,
        batch_size: int = 50_000,
        checkpoint_events: int = 1_000_000,
        checkpoint_seconds: float = 60.0,
        topology: Topology | None = None,
        load: bool = True,
        cache_bytes: int = CACHE_BYTES,
        followed: bool = False,
        defer_load: bool = False,
    ) -> None:
        """Open (or create) a data directory. ``load=False`` skips loading the facts and
        recovering the log tail: for a replay, which rebuilds them anyway.
        ``defer_load``: when the directory is settled (nothing to recover or publish:
        ``checkpointing.settled``), load the facts only when something first needs them
        (a batch, a table read, a checkpoint): a server that is only read never holds
        them.
        ``cache_bytes``: about how much memory the identifier bodies may hold between
        batches (the store keeps every body; see ``docs/architecture.md``).
        ``followed``: subscribers follow the table topics while the engine runs (a
        server), so every checkpoint publishes what changed; otherwise only the end of an
        ingest or a replay does (a bulk ingest of a year then publishes each person once,
        not once per checkpoint), and opening a followed engine publishes what waits."""
        self.cfg = cfg
        self.batch_size = batch_size
        self.checkpoint_events = checkpoint_events
        self.checkpoint_seconds = checkpoint_seconds
        self.topology = topology or load_topology()
        self.streams = tuple(self.topology.streams)
        self.store = Store(data_dir)
        self.scales = Scales.of(cfg)
        self.cache_bytes = cache_bytes
        self.followed = followed
        self.core = self.new_core()
        log_meta = self.store.meta("log")
        self.log_end: int = log_meta.get("log_end", 0)
        self.output_ends: dict[str, int] = log_meta.get("outputs", {})
        self.in_progress: dict[str, int] = log_meta.get("ingest", {})
        self.replay_end: int = log_meta.get("replay_end", 0)
        #: per table topic: its end and its live keys at its last compaction
        self.compacted: dict[str, dict[str, int]] = log_meta.get("compacted", {})
        #: names the output topics' numbering: the same id, the same records at the same
        #: offsets (a replay in place starts new topics, under a new id); written with the
        #: log's positions, so a directory from before there was one keeps the one it is
        #: given here from its next write on (at once when it is served: see ``load``)
        self.topics_id: str = log_meta.get("topics") or secrets.token_hex(8)
        stored_currency = log_meta.get("currency")
        if stored_currency is not None and stored_currency != cfg.currency:
            self.store.close()
            raise EngineError(
                f"{data_dir} holds {stored_currency} data; this installation is set to "
                f"{cfg.currency} (CRM2STREAM_CURRENCY)"
            )
        stored_key = log_meta.get("id_key_check")
        if stored_key is not None and stored_key != _key_check(cfg.id_key):
            self.store.close()
            raise EngineError(
                f"the person ids of {data_dir} were made with another CRM2STREAM_ID_KEY: "
                "set the one it was made with"
            )
        state = self.store.meta("state")
        self.applied = state.get("applied", 0)
        #: checkpoint segments: the last number, bytes written since the last full one
        #: (included), and the size of that full one
        self.segments = Segments(**state.get("segments", {}))
        #: whether the store indexes the anchor of every person the table topics hold
        #: (``n/``): every publication since the directory's first, or since its last
        #: replay in place, wrote it (a checkpoint says; before the first, nothing was
        #: published, unless a crash stopped it between its publication and its write)
        self.anchors_indexed: bool = state.get(
            "anchors", not state and not self.output_ends.get("persons")
        )
        self.since_checkpoint = 0
        self.last_checkpoint = time.monotonic()
        #: whether writes go through the write-ahead log (all but a replay's)
        self.logged = True
        #: called after every write, on the engine's thread (see ``api.hub``)
        self.listeners: list[Callable[[], None]] = []
        #: the time new lines arrive at, in microseconds since the epoch
        self.clock: Callable[[], int] = lambda: time.time_ns() // 1000
        #: the facts wait in the store until something needs them (``defer_load``)
        self.deferred = load and defer_load and checkpointing.settled(self)
        if load and not self.deferred:
            self.load()

    def load(self) -> None:
        """Load the facts and apply the log after them (what opening does by default)."""
        self.deferred = False
        checkpointing.load(self)
        if self.applied < self.log_end or self.replay_end > self.log_end:
            replay.recover(self)
        if self.followed and self.core.unpublished:
            self.checkpoint()  # what an unfollowed run left for the end it never reached
        if self.followed and self.store.meta("log").get("topics") != self.topics_id:
            self.write(self.store.batch())  # the id its subscribers may keep

    def need_facts(self) -> None:
        """Load the facts if they were deferred (``defer_load``)."""
        if self.deferred:
            log.info("loading the facts")
            started = time.perf_counter()
            self.load()
            log.info("loaded the facts in %.1f s", time.perf_counter() - started)

    @property
    def indexed(self) -> bool:
        """Whether the store indexes one person's history (``members``, ``history`` of an
        identifier) without the facts loaded: every directory this version checkpointed."""
        return self.log_end == 0 or bool(self.store.meta("state").get("indexes"))

    # -- lifecycle ----------------------------------------------------------------------
    def close(self, *, release: bool = False) -> None:
        """Close the store. ``release`` also drops the core here and now: the compiled core
        must be dropped on the thread that made it (a server's engine thread), while a
        command that exits right after may leave it to the exit, which is faster."""
        try:
            self.store.close()
        finally:
            if release:
                del self.core

    def __enter__(self) -> EmbeddedEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def new_core(self) -> Core:
        core = Core(self.cfg, indexes=True)
        core.attach_store(self.store.bodies, self.cache_bytes)
        core.keep_published_ties(self.store.published_ties)
        return core

    def replay_in_place(self) -> None:
        """Forget every table and rebuild them from the log, batch by batch as ingested.
        Interrupted, it carries on at the next open: the log end to reach is persisted."""
        replay.replay_in_place(self)

    def replay_into(self, target: EmbeddedEngine) -> None:
        """Feed this engine's log, batch by batch, to a fresh engine."""
        replay.replay_into(self, target)

    def compact(self, table: str) -> None:
        """Keep only the latest record of each key of a table topic (see ``compaction``)."""
        publishing.compact(self, table)

    # -- processing ---------------------------------------------------------------------
    def apply(
        self, start: int, chunk: bytes, arrival: int | None, originals: dict[int, bytes]
    ) -> BatchOutput:
        """Apply the log chunk at ``start`` in the core and gather what its write holds:
        dead letters, change streams, indexes and the bodies written ahead. Writes nothing."""
        done = self.core.process(
            chunk, start, arrival, lambda ids: self.store.accepted_before(ids, start)
        )
        counts = Counts(done.accepted, len(done.rejected), len(done.duplicates))
        dead = [(i, Rejection(reason, error)) for i, reason, error in done.rejected]
        dead += [(i, duplicate(event_id)) for i, event_id in done.duplicates]
        dead.sort(key=lambda item: item[0])
        lines = chunk.split(b"\n") if dead else []
        dlq = ndjson(dead_letter(start + i, originals.get(i, lines[i]), r) for i, r in dead)
        bases = [self.output_ends.get(topic, 0) for topic in self.streams]
        changes, triggers = self.core.score_changes(*bases)
        records = dict(zip(self.streams, (changes, triggers), strict=True))
        records[self.topology.dlq] = (len(dead), dlq)
        indexes = self.core.take_indexes()
        bodies = self.core.evict(self.segments.seq + 1)
        return BatchOutput(counts, done.lines, done.accepted_ids, records, dead, indexes, bodies)

    def process_batch(self, chunk: bytes, ingest: tuple[str, int] | None = None) -> Counts:
        """``submit`` of new lines without the dead letters, then a checkpoint if due."""
        counts = self.submit(chunk, ingest).counts
        self.checkpoint_if_due()
        return counts

    def checkpoint_if_due(self) -> None:
        if self.checkpoint_due():
            self.checkpoint()

    def submit(
        self,
        chunk: bytes,
        ingest: tuple[str, int] | None = None,
        *,
        in_log: bool = False,
        arrival: int | Literal["now"] | None = "now",
        originals: dict[int, bytes] | None = None,
    ) -> BatchOutput:
        """Append one batch of raw lines (non-empty, joined by newlines) to the log, apply
        it and write it atomically. Its outcomes are on disk when it returns: a checkpoint
        that is due is the caller's (``checkpoint_due``), so that one failing never fails
        the answer to a batch already written.

        ``ingest`` = (file fingerprint, byte offset after this batch) records progress
        through an input file in the same write, so an interrupted ingest can resume.
        ``in_log``: the lines are the log's own chunk at this position (an in-place replay).
        ``arrival``: when the lines arrived (microseconds since the epoch), recorded with
        them and judged against: ``now`` (``clock``) for new lines; lines of a log keep the
        time it recorded (None: it recorded none, and no event is judged too far ahead).
        ``originals``: the bytes received of lines the log holds otherwise (by index), kept
        with them for their dead letters.
        """
        self.need_facts()
        if not in_log and self.replay_end > self.log_end:
            raise EngineError(
                "a replay of this data directory is unfinished: open it again to finish it"
            )
        start = self.log_end
        if arrival == "now":
            arrival = self.clock()
        out = self.apply(start, chunk, arrival, originals or {})
        batch = self.store.batch()
        if not in_log:
            batch.log_chunk(start, chunk, arrival, originals or {})
        batch.accepted(start, out.accepted_ids)
        batch.indexes(*out.indexes)
        batch.bodies(out.bodies)
        outputs = dict(self.output_ends)
        for topic, (count, records) in out.records.items():
            if count:
                base = outputs.get(topic, 0)
                batch.outputs(topic, base, records)
                outputs[topic] = base + count
        in_progress = self.in_progress
        if ingest is not None:
            in_progress = {**in_progress, ingest[0]: ingest[1]}
        self.write(batch, log_end=start + out.lines, output_ends=outputs, in_progress=in_progress)
        self.since_checkpoint += out.lines
        return out

    def checkpoint_due(self) -> bool:
        return self.since_checkpoint >= self.checkpoint_events or (
            self.since_checkpoint > 0
            and time.monotonic() - self.last_checkpoint >= self.checkpoint_seconds
        )

    def write(self, batch: Write, *, logged: bool | None = None, **positions: Any) -> None:
        """Write a batch with the log's positions as they stand after it (``positions``:
        those it changes, by attribute name), then take them and tell the listeners
        (subscribers waiting for new records). A write that fails changes no position:
        what the engine reports (the log end, the topics' ends) is what the disk holds."""
        self.persist(batch, logged, positions)
        self.announce(positions)

    def persist(self, batch: Write, logged: bool | None, positions: dict[str, Any]) -> None:
        """``write`` up to the store's write: the batch with the log's positions after it."""
        now = {name: positions.get(name, getattr(self, name)) for name in _LOG_POSITIONS}
        fixed = {"currency": self.cfg.currency, "id_key_check": _key_check(self.cfg.id_key)}
        batch.meta("log", {_LOG_POSITIONS[name]: value for name, value in now.items()} | fixed)
        self.store.write(batch, logged=self.logged if logged is None else logged)

    def announce(self, positions: dict[str, Any]) -> None:
        """``write`` after the store's write: take the positions, tell the listeners."""
        for name, value in positions.items():
            setattr(self, name, value)
        for listener in self.listeners:
            listener()

    def checkpoint(self, *, publish: bool | None = None) -> None:
        """Publish the table topics (``publish``; by default when ``followed``), then
        write every dirty fact with the log position it stands at (``checkpointing``).
        With the facts deferred there is nothing to write: nothing changed since the
        checkpoint they wait in (writing an empty core would replace them)."""
        if not self.deferred:
            checkpointing.checkpoint(self, publish)

    # -- input --------------------------------------------------------------------------
    def ingest_lines(self, lines: Iterable[bytes]) -> Counts:
        """Ingest raw NDJSON lines (blank lines are skipped); checkpoint at the end."""
        total = Counts()
        for batch in batched((strip_line(line) for line in lines), self.batch_size):
            total.add(self.process_batch(b"\n".join(batch)))
        self.checkpoint(publish=True)
        return total

    def ingest_stream(self, stream: BinaryIO, fingerprint: str | None = None) -> Counts:
        """Ingest a binary stream; with a fingerprint, resume where an interrupted run of
        the same file stopped instead of offering its first part again."""
        offset = 0
        if fingerprint is not None and fingerprint in self.in_progress:
            offset = self.in_progress[fingerprint]
            log.warning("resuming an interrupted ingest of this file at byte %d", offset)
            stream.seek(offset)
        total = Counts()
        for chunk, _, consumed in read_chunks(stream, self.batch_size):
            total.add(self.process_batch(chunk, progress(fingerprint, offset + consumed)))
        if fingerprint is not None:
            self.in_progress.pop(fingerprint, None)
        self.checkpoint(publish=True)
        return total

    def ingest_file(self, path: Path) -> Counts:
        with path.open("rb") as stream:
            return self.ingest_stream(stream, file_fingerprint(path))

    # -- reading ------------------------------------------------------------------------
    def default_day(self) -> int | None:
        self.need_facts()
        max_ts = self.core.max_ts
        return None if max_ts is None else max_ts // DAY_US

    def export(self, table: str, as_of_day: int | None = None) -> Iterator[Row]:
        if table in self.topology.tables:
            self.need_facts()
            day = self.default_day() if as_of_day is None else as_of_day
            if day is None:
                return iter(())
            return self._read(self.core.rows(table, day))
        if table in self.topology.streams or table == self.topology.dlq:
            return self.store.outputs(table)
        choices = ", ".join(self.topology.exportable)
        raise KeyError(f"unknown table {table!r}; choose from {choices}")

    def _read(self, rows: Iterator[Row]) -> Iterator[Row]:
        """A table's rows, then the cache's budget kept again (the read left dirty bodies
        packed: writing them ahead is a store write)."""
        try:
            yield from rows
        finally:
            checkpointing.evict(self)

    def digest(self, as_of_day: int | None = None) -> str:
        self.need_facts()
        day = self.default_day() if as_of_day is None else as_of_day
        if day is None:
            return hashlib.sha256(b"").hexdigest()
        try:
            return self.core.digest(day)
        finally:
            checkpointing.evict(self)  # the digest read every body, a page at a time

    def members(self, who: str) -> set[str] | None:
        """The identifiers of a person id (as of the latest day) or, for an identifier
        key, of the person it belongs to now; None when unknown. For an identifier the
        store's indexes answer (``indexed``), reading only that person's keys; for a
        person id too, while the facts are deferred (the topics hold every person) and
        the store indexes their anchors."""
        if who.startswith("p_"):
            if self.deferred and self.anchors_indexed:
                anchor = self.store.anchor(who)
                return None if anchor is None else members_of(self.store, anchor)
            day = self.default_day()
            return None if day is None else self.core.person_members(who, day)
        return members_of(self.store, who)

    def history(self, members: Iterable[str]) -> list[Row]:
        """The events naming any of ``members``, in event-time order."""
        return events_of(self.store, members, self.cfg.currency)
