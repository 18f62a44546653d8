"""The embedded engine's checkpoints: every dirty fact written with the log position it
stands at, so that an open loads them and applies only the log after it. The table topics
are published first (when due): a crash in between loses nothing, as the next open applies
the log after the previous checkpoint again and publishes the same keys again (a table
topic keeps the latest record per key). Without a publication, the identifiers' records
say what waits for one."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, replace
from typing import TYPE_CHECKING

from crm2stream.engine import publishing
from crm2stream.engine.segments import Segments

if TYPE_CHECKING:
    from crm2stream.engine.embedded import EmbeddedEngine
    from crm2stream.engine.write import Write

log = logging.getLogger("crm2stream.embedded")

#: A checkpoint's parts are written in writes of about this many bytes: a checkpoint of
#: every fact never sits in memory whole (in the core, the interpreter and RocksDB's
#: memtable at once, as one write would). Each write is held three times over while it is
#: made (the records, the WriteBatch, the memtable): at 9M events, a checkpoint after
#: 300,000 more events peaked 187 MiB lower in writes of 16 MiB than of 64 MiB.
CHECKPOINT_WRITE_BYTES = 16 << 20


def load(engine: EmbeddedEngine) -> None:
    """Load the last checkpoint into the core, or mark it for a rebuild from the log when
    it is in a layout this version does not read."""
    moved = engine.store.index_accepted_ids()
    if moved:
        log.warning("moved the accepted event ids of %d log chunks into their index", moved)
    state = engine.store.meta("state")
    if engine.applied and state.get("core", "python") != "native":
        # The retired Python core checkpointed in a format of its own: rebuild.
        log.warning(
            "the checkpoint was written by the %s core: rebuilding it from the log",
            state.get("core", "python"),
        )
        rebuild(engine)
        return
    older = "segments" not in state or not state.get("indexes")
    keyed = state.get("bodies") == "keyed" and state.get("published") == "keyed"
    if engine.applied and (older or not keyed):
        log.warning("the checkpoint is in an older layout: rebuilding it from the log")
        rebuild(engine)
        return
    engine.core.load(engine.store.segments(engine.segments.seq), max_ts=state.get("max_ts"))
    if engine.segments.seq and state.get("scales") != engine.scales.fingerprint:
        log.warning("value settings changed since the last run: recomputing decayed sums")
        engine.core.rebuild_sums()


def settled(engine: EmbeddedEngine) -> bool:
    """Whether loading the facts would change nothing stored: the last checkpoint applied
    the whole log in this version's layout, with these value settings, and left nothing
    to publish, and the topics' id is recorded. Only then may a server or a point read
    leave them unloaded: the topics already hold every table's rows."""
    state = engine.store.meta("state")
    return (
        engine.applied == engine.log_end
        and engine.replay_end <= engine.log_end
        and state.get("unpublished") == 0
        and state.get("scales") == engine.scales.fingerprint
        and engine.store.meta("log").get("topics") == engine.topics_id
    )


def rebuild(engine: EmbeddedEngine) -> None:
    """Recover every fact from the log; the next checkpoint replaces the stored ones."""
    engine.applied = 0
    engine.segments = Segments()


def checkpoint(engine: EmbeddedEngine, publish: bool | None) -> None:
    """Publish the table topics (``publish``; by default when ``followed``), then
    write every dirty fact with the log position it stands at. A crash in between
    loses nothing: the next open applies the log after the previous checkpoint again
    and publishes the same keys again (a table topic keeps the latest record per
    key). Without a publication, the identifiers' records say what waits for one."""
    if engine.followed if publish is None else publish:
        publishing.publish(engine)
    publishing.compact_due(engine)
    full = engine.segments.next_is_full()
    segments = replace(engine.segments)
    seq = segments.seq + 1
    engine.core.begin_keyed_checkpoint(full, seq)
    try:
        batch, size = write_checkpoint(engine, seq)
        segments.written(size, full)
        if full:
            batch.drop_segments(below=seq)
        for keys in engine.core.checkpoint_stale():
            batch.delete(keys)
        batch.meta(
            "state",
            {
                "applied": engine.log_end,
                "max_ts": engine.core.max_ts,
                "scales": engine.scales.fingerprint,
                "core": "native",
                "segments": asdict(segments),
                "indexes": True,
                "bodies": "keyed",
                "published": "keyed",
                # what waits for a publication (see ``settled``)
                "unpublished": engine.core.unpublished,
                "anchors": engine.anchors_indexed,
            },
        )
        positions = {"applied": engine.log_end, "segments": segments}
        engine.persist(batch, None, positions)
    except BaseException:
        engine.core.end_checkpoint(committed=False)  # the commit did not land
        raise
    engine.core.end_checkpoint(committed=True)
    engine.announce(positions)
    engine.since_checkpoint = 0
    engine.last_checkpoint = time.monotonic()
    evict(engine)


def evict(engine: EmbeddedEngine) -> None:
    """Keep the cache's budget now (after a checkpoint, or a whole-state read)."""
    written = engine.core.evict(engine.segments.seq + 1)
    if written:
        batch = engine.store.batch()
        batch.bodies(written)
        engine.store.write(batch, logged=engine.logged)


def write_checkpoint(engine: EmbeddedEngine, seq: int) -> tuple[Write, int]:
    """Checkpoint ``seq``, begun in the core, but for its commit: the dirty bodies
    under their keys, then the segment (what a crash left of an unfinished one
    dropped first). Beyond ``CHECKPOINT_WRITE_BYTES`` it is written in pieces outside
    the write-ahead log and flushed, so that the commit never lands on top of pieces a
    crash could lose. Until the commit, only this process reads under this number
    (bodies it wrote ahead), and a reopened one reads the committed checkpoint's.
    Returns the write to commit with, and the segment's size."""
    batch = engine.store.batch()
    batch.drop_segments(above=seq - 1)
    pending, size, spilled = 0, 0, False

    def spill_if_due() -> None:
        nonlocal batch, pending, spilled
        if pending >= CHECKPOINT_WRITE_BYTES:
            engine.store.write(batch, logged=False)
            batch, pending, spilled = engine.store.batch(), 0, True

    for bodies in engine.core.checkpoint_bodies():
        batch.bodies(bodies)
        pending += sum(len(key) + len(record) for key, record in bodies)
        spill_if_due()
    for n, part in enumerate(engine.core.checkpoint_segment()):
        batch.segment_part(seq, n, part)
        size, pending = size + len(part), pending + len(part)
        spill_if_due()
    if spilled and engine.logged:
        engine.store.flush()
    return batch, size
