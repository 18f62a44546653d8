"""The embedded engine: one process, a local event log and rocksdict state.

Each batch of input lines is validated and applied by the core in memory, then written in
one WriteBatch: the raw lines (the log), the event ids they accepted, their output records
(dead letters, score changes, marketing triggers) and the new positions. Every
``checkpoint_events`` events or ``checkpoint_seconds`` (and at the end of every ingest)
the facts the core marked dirty are written with the log position they stand at. The
table topics get the rows that changed (``docs/architecture.md``) just before a
checkpoint: every one while the topics are ``followed`` (a server), else only the one
that ends an ingest or a replay; until then each identifier's checkpoint record says what
the topics hold of it. Identifier bodies (day buckets, ties, consent, sums: what grows
with history) are written under their keys, and only ``cache_bytes`` of them stay in
memory, decoded or packed: a dirty one is written ahead of the checkpoint that commits
it, and the core asks the store for those a batch needs.

On open, the checkpointed facts are loaded and the log chunks after their position are
applied again, with the same batch boundaries, so the facts and the change streams come
out exactly as if the process had never stopped: ``kill -9`` at any instant loses
nothing and counts nothing twice.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, BinaryIO, Literal

from crm2stream.core.config import CoreConfig
from crm2stream.core.decay import Scales
from crm2stream.core.events import DAY_US
from crm2stream.core.tables import STATE_TABLES, Row
from crm2stream.core.validation import Rejection
from crm2stream.engine import compaction
from crm2stream.engine.core import PUBLISH_ITEMS, Core
from crm2stream.engine.history import events_of, members_of
from crm2stream.engine.lines import (
    batched,
    file_fingerprint,
    progress,
    read_chunks,
    strip_line,
)
from crm2stream.engine.results import (
    BatchOutput,
    Counts,
    EngineError,
    dead_letter,
    duplicate,
    ndjson,
)
from crm2stream.engine.segments import Segments
from crm2stream.engine.store import Store, Write
from crm2stream.topology import Topology, load_topology

log = logging.getLogger("crm2stream.embedded")

#: A table topic is compacted once it holds this many records more than it kept live at
#: its last compaction, and at least twice as many.
COMPACT_AFTER_RECORDS = 100_000
#: A checkpoint's parts are written in writes of about this many bytes: a checkpoint of
#: every fact never sits in memory whole (in the core, the interpreter and RocksDB's
#: memtable at once, as one write would).
CHECKPOINT_WRITE_BYTES = 64 << 20
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
    ) -> None:
        """Open (or create) a data directory. ``load=False`` skips loading the facts and
        recovering the log tail: for a replay, which rebuilds them anyway.
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
        self.core = self._new_core()
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
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        #: whether writes go through the write-ahead log (all but a replay's)
        self._logged = True
        #: called after every write, on the engine's thread (see ``api.hub``)
        self.listeners: list[Callable[[], None]] = []
        #: the time new lines arrive at, in microseconds since the epoch
        self.clock: Callable[[], int] = lambda: time.time_ns() // 1000
        if load:
            self.load()

    def load(self) -> None:
        """Load the facts and apply the log after them (what opening does by default)."""
        self._load()
        if self.applied < self.log_end or self.replay_end > self.log_end:
            self._recover()
        if self.followed and self.core.unpublished:
            self.checkpoint()  # what an unfollowed run left for the end it never reached
        if self.followed and self.store.meta("log").get("topics") != self.topics_id:
            self._write(self.store.batch())  # the id its subscribers may keep

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

    def _new_core(self) -> Core:
        core = Core(self.cfg, indexes=True)
        core.attach_store(self.store.bodies, self.cache_bytes)
        core.keep_published_ties(self.store.published_ties)
        return core

    def _load(self) -> None:
        moved = self.store.index_accepted_ids()
        if moved:
            log.warning("moved the accepted event ids of %d log chunks into their index", moved)
        state = self.store.meta("state")
        if self.applied and state.get("core", "python") != "native":
            # The retired Python core checkpointed in a format of its own: rebuild.
            log.warning(
                "the checkpoint was written by the %s core: rebuilding it from the log",
                state.get("core", "python"),
            )
            self._rebuild()
            return
        older = "segments" not in state or not state.get("indexes")
        keyed = state.get("bodies") == "keyed" and state.get("published") == "keyed"
        if self.applied and (older or not keyed):
            log.warning("the checkpoint is in an older layout: rebuilding it from the log")
            self._rebuild()
            return
        self.core.load(self.store.segments(self.segments.seq), max_ts=state.get("max_ts"))
        if self.segments.seq and state.get("scales") != self.scales.fingerprint:
            log.warning("value settings changed since the last run: recomputing decayed sums")
            self.core.rebuild_sums()

    def _recover(self) -> None:
        """Apply the log chunks written after the last checkpoint, as they were batched."""
        log.info("recovering log positions %d..%d", self.applied, self.log_end)
        for start, chunk in self.store.chunks(self.applied):
            if start >= self.log_end:
                break
            out = self._process(
                start, chunk, self.store.arrival(start), self.store.originals(start)
            )
            batch = self.store.batch()  # the same keys again, or the first (a rebuild)
            batch.indexes(*out.indexes)
            batch.bodies(out.bodies)
            self.store.write(batch, logged=self._logged)
        # A rebuilt core knows nothing of what the topics hold: it publishes everyone, as
        # the versions whose layouts it rebuilds did at each of their checkpoints.
        self.checkpoint(publish=True if self.applied == 0 else None)
        if self.replay_end > self.log_end:
            self._replay_log()

    def replay_in_place(self) -> None:
        """Forget every table and rebuild them from the log, batch by batch as ingested.

        Interrupted, it carries on at the next open: the log end to reach is persisted.
        """
        self.replay_end = max(self.log_end, self.replay_end)
        self.core = self._new_core()
        self.output_ends, self.in_progress, self.compacted = {}, {}, {}
        self.applied = self.log_end = 0
        self.segments = Segments()
        batch = self.store.batch()
        batch.clear_derived()  # ...and, in the same write, where the replay must reach
        self._write(batch, topics_id=secrets.token_hex(8))  # topics numbered anew
        self._replay_log()

    def _replay_log(self) -> None:
        """Rebuild from the log up to ``replay_end``. Everything written here is derived
        from the log, so it skips the write-ahead log and is flushed at the end: a crash
        keeps the batches flushed so far (whole batches, in order) and the next open
        carries on from them. The flush comes before any logged write, even after an
        error: a logged write must never land on top of unlogged ones a crash could lose."""
        self._logged = False
        try:
            for start, chunk in self.store.chunks(self.log_end):
                if start >= self.replay_end:
                    break
                arrival, originals = self.store.arrival(start), self.store.originals(start)
                self.submit(chunk, in_log=True, arrival=arrival, originals=originals)
                self.checkpoint_if_due()
            self.replay_end = 0
            self.checkpoint(publish=True)
        finally:
            self.store.flush()
            self._logged = True

    def replay_into(self, target: EmbeddedEngine) -> None:
        """Feed this engine's log, batch by batch, to a fresh engine."""
        if target.log_end:
            raise EngineError(f"{target.store.path} is not empty")
        end = max(self.log_end, self.replay_end)
        for start, chunk in self.store.chunks(0):
            if start >= end:
                break
            arrival, originals = self.store.arrival(start), self.store.originals(start)
            target.submit(chunk, arrival=arrival, originals=originals)  # as recorded
            target.checkpoint_if_due()
        target.checkpoint(publish=True)

    # -- processing ---------------------------------------------------------------------
    def _process(
        self, start: int, chunk: bytes, arrival: int | None, originals: dict[int, bytes]
    ) -> BatchOutput:
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
        if not in_log and self.replay_end > self.log_end:
            raise EngineError(
                "a replay of this data directory is unfinished: open it again to finish it"
            )
        start = self.log_end
        if arrival == "now":
            arrival = self.clock()
        out = self._process(start, chunk, arrival, originals or {})
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
        self._write(batch, log_end=start + out.lines, output_ends=outputs, in_progress=in_progress)
        self._since_checkpoint += out.lines
        return out

    def checkpoint_due(self) -> bool:
        return self._since_checkpoint >= self.checkpoint_events or (
            self._since_checkpoint > 0
            and time.monotonic() - self._last_checkpoint >= self.checkpoint_seconds
        )

    def _write(self, batch: Write, *, logged: bool | None = None, **positions: Any) -> None:
        """Write a batch with the log's positions as they stand after it (``positions``:
        those it changes, by attribute name), then take them and tell the listeners
        (subscribers waiting for new records). A write that fails changes no position:
        what the engine reports (the log end, the topics' ends) is what the disk holds."""
        self._store_write(batch, logged, positions)
        self._take(positions)

    def _store_write(self, batch: Write, logged: bool | None, positions: dict[str, Any]) -> None:
        """``_write`` up to the store's write."""
        now = {name: positions.get(name, getattr(self, name)) for name in _LOG_POSITIONS}
        fixed = {"currency": self.cfg.currency, "id_key_check": _key_check(self.cfg.id_key)}
        batch.meta("log", {_LOG_POSITIONS[name]: value for name, value in now.items()} | fixed)
        self.store.write(batch, logged=self._logged if logged is None else logged)

    def _take(self, positions: dict[str, Any]) -> None:
        """``_write`` after the store's write: take the positions, tell the listeners."""
        for name, value in positions.items():
            setattr(self, name, value)
        for listener in self.listeners:
            listener()

    def _rebuild(self) -> None:
        """Recover every fact from the log; the next checkpoint replaces the stored ones."""
        self.applied = 0
        self.segments = Segments()

    def checkpoint(self, *, publish: bool | None = None) -> None:
        """Publish the table topics (``publish``; by default when ``followed``), then
        write every dirty fact with the log position it stands at. A crash in between
        loses nothing: the next open applies the log after the previous checkpoint again
        and publishes the same keys again (a table topic keeps the latest record per
        key). Without a publication, the identifiers' records say what waits for one."""
        if self.followed if publish is None else publish:
            self._publish()
        self._compact_due()
        full = self.segments.next_is_full()
        segments = replace(self.segments)
        seq = segments.seq + 1
        self.core.begin_keyed_checkpoint(full, seq)
        try:
            batch, size = self._write_checkpoint(seq)
            segments.written(size, full)
            if full:
                batch.drop_segments(below=seq)
            batch.delete(self.core.checkpoint_stale())
            batch.meta(
                "state",
                {
                    "applied": self.log_end,
                    "max_ts": self.core.max_ts,
                    "scales": self.scales.fingerprint,
                    "core": "native",
                    "segments": asdict(segments),
                    "indexes": True,
                    "bodies": "keyed",
                    "published": "keyed",
                },
            )
            positions = {"applied": self.log_end, "segments": segments}
            self._store_write(batch, None, positions)
        except BaseException:
            self.core.end_checkpoint(committed=False)  # the commit did not land
            raise
        self.core.end_checkpoint(committed=True)
        self._take(positions)
        self._since_checkpoint = 0
        self._last_checkpoint = time.monotonic()
        self._evict()

    def _evict(self) -> None:
        """Keep the cache's budget now (after a checkpoint, or a whole-state read)."""
        written = self.core.evict(self.segments.seq + 1)
        if written:
            batch = self.store.batch()
            batch.bodies(written)
            self.store.write(batch, logged=self._logged)

    def _write_checkpoint(self, seq: int) -> tuple[Write, int]:
        """Checkpoint ``seq``, begun in the core, but for its commit: the dirty bodies
        under their keys, then the segment (what a crash left of an unfinished one
        dropped first). Beyond ``CHECKPOINT_WRITE_BYTES`` it is written in pieces outside
        the write-ahead log and flushed, so that the commit never lands on top of pieces a
        crash could lose. Until the commit, only this process reads under this number
        (bodies it wrote ahead), and a reopened one reads the committed checkpoint's.
        Returns the write to commit with, and the segment's size."""
        batch = self.store.batch()
        batch.drop_segments(above=seq - 1)
        pending, size, spilled = 0, 0, False

        def spill_if_due() -> None:
            nonlocal batch, pending, spilled
            if pending >= CHECKPOINT_WRITE_BYTES:
                self.store.write(batch, logged=False)
                batch, pending, spilled = self.store.batch(), 0, True

        for bodies in self.core.checkpoint_bodies():
            batch.bodies(bodies)
            pending += sum(len(key) + len(record) for key, record in bodies)
            spill_if_due()
        for n, part in enumerate(self.core.checkpoint_segment()):
            batch.segment_part(seq, n, part)
            size, pending = size + len(part), pending + len(part)
            spill_if_due()
        if spilled and self._logged:
            self.store.flush()
        return batch, size

    def _publish(self) -> None:
        """Write the table topics' records of what changed since the last publication, in
        writes of at most ``PUBLISH_ITEMS`` persons each (``docs/architecture.md``).

        With nobody listening (a command-line ingest), a publication of more than one
        write (the end of a bulk ingest: hundreds of MB) skips the write-ahead log and is
        flushed before the checkpoint that follows it: written once, not twice. A crash
        before the flush loses only records the recovery publishes again. A server's
        subscribers could read such records before the flush, and after a crash find
        others at their offsets, so with listeners every write is logged."""
        items = self.core.begin_publication()
        if not items:
            return
        bulk = items > PUBLISH_ITEMS and not self.listeners
        try:
            while True:
                bases = [self.output_ends.get(table, 0) for table in STATE_TABLES]
                out = self.core.publish(bases, PUBLISH_ITEMS)
                if not any(count for count, _ in out):
                    break
                batch = self.store.batch()
                batch.published_ties(self.core.take_published_ties())
                batch.bodies(self.core.evict(self.segments.seq + 1))
                outputs = dict(self.output_ends)
                for table, base, (count, records) in zip(STATE_TABLES, bases, out, strict=True):
                    if count:
                        batch.outputs(table, base, records)
                        outputs[table] = base + count
                self._write(batch, logged=self._logged and not bulk, output_ends=outputs)
        finally:
            if bulk and self._logged:
                self.store.flush()  # before any logged write lands on top of these

    def _compact_due(self) -> None:
        """Compact the table topics that grew enough since their last compaction. Until a
        topic's first compaction, the records of its first publication count as what it
        kept: they are one per key (a bulk ingest's publication of everyone), and
        compacting them would read them all to drop none."""
        for table in STATE_TABLES:
            end = self.output_ends.get(table, 0)
            if table not in self.compacted:
                if end:
                    self.compacted = {**self.compacted, table: {"end": end, "live": end}}
                continue
            last = self.compacted[table]
            grown = end - last["end"]
            if grown >= COMPACT_AFTER_RECORDS and grown >= last["live"]:
                self.compact(table)

    def compact(self, table: str) -> None:
        """Keep only the latest record of each key of a table topic (see ``compaction``)."""
        live, last = compaction.compact_topic(self.store, table, logged=self._logged)
        compacted = {**self.compacted, table: {"end": self.output_ends.get(table, 0), "live": live}}
        self._write(last, compacted=compacted)
        log.info("compacted table topic %s: %d keys", table, live)

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
        max_ts = self.core.max_ts
        return None if max_ts is None else max_ts // DAY_US

    def export(self, table: str, as_of_day: int | None = None) -> Iterator[Row]:
        if table in self.topology.tables:
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
            self._evict()

    def digest(self, as_of_day: int | None = None) -> str:
        day = self.default_day() if as_of_day is None else as_of_day
        if day is None:
            return hashlib.sha256(b"").hexdigest()
        try:
            return self.core.digest(day)
        finally:
            self._evict()  # the digest read every body, a page at a time

    def members(self, who: str) -> set[str] | None:
        """The identifiers of a person id (as of the latest day) or, for an identifier
        key, of the person it belongs to now; None when unknown. For an identifier the
        store's indexes answer (``indexed``), reading only that person's keys."""
        if who.startswith("p_"):
            day = self.default_day()
            return None if day is None else self.core.person_members(who, day)
        return members_of(self.store, who)

    def history(self, members: Iterable[str]) -> list[Row]:
        """The events naming any of ``members``, in event-time order."""
        return events_of(self.store, members, self.cfg.currency)
