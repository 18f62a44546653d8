"""Rebuilding the embedded engine's facts from its log: the recovery of what a crash left
after the last checkpoint, a replay in place (every table forgotten and rebuilt) and a
replay into a fresh data directory. Every one applies the log's chunks with the batch
boundaries they were ingested with, so the facts and the change streams come out as the
ingest made them."""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING

from crm2stream.engine.results import EngineError
from crm2stream.engine.segments import Segments

if TYPE_CHECKING:
    from crm2stream.engine.embedded import EmbeddedEngine

log = logging.getLogger("crm2stream.embedded")


def recover(engine: EmbeddedEngine) -> None:
    """Apply the log chunks written after the last checkpoint, as they were batched."""
    log.info("recovering log positions %d..%d", engine.applied, engine.log_end)
    for start, chunk in engine.store.chunks(engine.applied):
        if start >= engine.log_end:
            break
        out = engine.apply(start, chunk, engine.store.arrival(start), engine.store.originals(start))
        batch = engine.store.batch()  # the same keys again, or the first (a rebuild)
        batch.indexes(*out.indexes)
        batch.bodies(out.bodies)
        engine.store.write(batch, logged=engine.logged)
    # A rebuilt core knows nothing of what the topics hold: it publishes everyone, as
    # the versions whose layouts it rebuilds did at each of their checkpoints.
    engine.checkpoint(publish=True if engine.applied == 0 else None)
    if engine.replay_end > engine.log_end:
        replay_log(engine)


def replay_in_place(engine: EmbeddedEngine) -> None:
    """Forget every table and rebuild them from the log, batch by batch as ingested.

    Interrupted, it carries on at the next open: the log end to reach is persisted.
    """
    engine.replay_end = max(engine.log_end, engine.replay_end)
    engine.core, engine.deferred = engine.new_core(), False  # the stored facts go
    engine.anchors_indexed = True  # ...and every publication from here indexes its persons
    engine.output_ends, engine.in_progress, engine.compacted = {}, {}, {}
    engine.applied = engine.log_end = 0
    engine.segments = Segments()
    batch = engine.store.batch()
    batch.clear_derived()  # ...and, in the same write, where the replay must reach
    engine.write(batch, topics_id=secrets.token_hex(8))  # topics numbered anew
    replay_log(engine)


def replay_log(engine: EmbeddedEngine) -> None:
    """Rebuild from the log up to ``replay_end``. Everything written here is derived
    from the log, so it skips the write-ahead log and is flushed at the end: a crash
    keeps the batches flushed so far (whole batches, in order) and the next open
    carries on from them. The flush comes before any logged write, even after an
    error: a logged write must never land on top of unlogged ones a crash could lose."""
    engine.logged = False
    try:
        for start, chunk in engine.store.chunks(engine.log_end):
            if start >= engine.replay_end:
                break
            arrival, originals = engine.store.arrival(start), engine.store.originals(start)
            engine.submit(chunk, in_log=True, arrival=arrival, originals=originals)
            engine.checkpoint_if_due()
        engine.replay_end = 0
        engine.checkpoint(publish=True)
    finally:
        engine.store.flush()
        engine.logged = True


def replay_into(engine: EmbeddedEngine, target: EmbeddedEngine) -> None:
    """Feed this engine's log, batch by batch, to a fresh engine."""
    if target.log_end:
        raise EngineError(f"{target.store.path} is not empty")
    end = max(engine.log_end, engine.replay_end)
    for start, chunk in engine.store.chunks(0):
        if start >= end:
            break
        arrival, originals = engine.store.arrival(start), engine.store.originals(start)
        target.submit(chunk, arrival=arrival, originals=originals)  # as recorded
        target.checkpoint_if_due()
    target.checkpoint(publish=True)
