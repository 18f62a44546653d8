"""The embedded engine's table topics: publishing what changed since the last
publication, and compacting a topic to the latest record of each key once it grew enough
(``docs/architecture.md``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from crm2stream.core.tables import STATE_TABLES
from crm2stream.engine import compaction
from crm2stream.engine.core import PUBLISH_ITEMS as PUBLISH_ITEMS  # set by bench.tail

if TYPE_CHECKING:
    from crm2stream.engine.embedded import EmbeddedEngine

log = logging.getLogger("crm2stream.embedded")

#: A table topic is compacted once it holds this many records more than it kept live at
#: its last compaction, and at least twice as many.
COMPACT_AFTER_RECORDS = 100_000


def publish(engine: EmbeddedEngine) -> None:
    """Write the table topics' records of what changed since the last publication, in
    writes of at most ``PUBLISH_ITEMS`` persons each (``docs/architecture.md``).

    With nobody listening (a command-line ingest), a publication of more than one
    write (the end of a bulk ingest: hundreds of MB) skips the write-ahead log and is
    flushed before the checkpoint that follows it: written once, not twice. A crash
    before the flush loses only records the recovery publishes again. A server's
    subscribers could read such records before the flush, and after a crash find
    others at their offsets, so with listeners every write is logged."""
    items = engine.core.begin_publication()
    if not items:
        return
    bulk = items > PUBLISH_ITEMS and not engine.listeners
    try:
        while True:
            bases = [engine.output_ends.get(table, 0) for table in STATE_TABLES]
            out = engine.core.publish(bases, PUBLISH_ITEMS)
            if not any(count for count, _ in out):
                break
            batch = engine.store.batch()
            batch.published_keys(engine.core.take_published_keys())
            batch.bodies(engine.core.evict(engine.segments.seq + 1))
            outputs = dict(engine.output_ends)
            for table, base, (count, records) in zip(STATE_TABLES, bases, out, strict=True):
                if count:
                    batch.outputs(table, base, records)
                    outputs[table] = base + count
            engine.write(batch, logged=engine.logged and not bulk, output_ends=outputs)
    finally:
        if bulk and engine.logged:
            engine.store.flush()  # before any logged write lands on top of these


def compact_due(engine: EmbeddedEngine) -> None:
    """Compact the table topics that grew enough since their last compaction. Until a
    topic's first compaction, the records of its first publication count as what it
    kept: they are one per key (a bulk ingest's publication of everyone), and
    compacting them would read them all to drop none."""
    for table in STATE_TABLES:
        end = engine.output_ends.get(table, 0)
        if table not in engine.compacted:
            if end:
                engine.compacted = {**engine.compacted, table: {"end": end, "live": end}}
            continue
        last = engine.compacted[table]
        grown = end - last["end"]
        if grown >= COMPACT_AFTER_RECORDS and grown >= last["live"]:
            compact(engine, table)


def compact(engine: EmbeddedEngine, table: str) -> None:
    """Keep only the latest record of each key of a table topic (see ``compaction``)."""
    live, last = compaction.compact_topic(engine.store, table, logged=engine.logged)
    compacted = {**engine.compacted, table: {"end": engine.output_ends.get(table, 0), "live": live}}
    engine.write(last, compacted=compacted)
    log.info("compacted table topic %s: %d keys", table, live)
