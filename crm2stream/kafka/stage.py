"""The table stage: the one place the distributed engine applies events to the tables.

Identity resolution needs one consistent view of every link: a person is a connected
component of identifiers, and one link event can join two persons whose events were keyed
to different partitions. So the tables live in one stage that owns the single partition of
the accepted topic, and every worker can take it over (Kafka's group protocol moves it on
a failure). What scales with partitions and workers is the rest, done by the intake per
input partition: decoding and validating every record (see ``chunks``). The stage runs the
same compiled core as the embedded engine, batch by batch, and batches are what make it
fast: a few hundred thousand events per second go through the core on one CPU.

Two rhythms, as a Kafka Streams task has (records forwarded as they come, state committed
every ``commit.interval.ms``):

- every batch (``apply``) gives its dead letters and its stream records (score changes,
  marketing triggers) at once: what automation reacts to waits for nothing;
- every ``commit`` (the worker's ``publish_seconds``) gives the table topics' records of
  everything that changed since the last commit (a person changed by ten batches is
  written once) and then the changelog record of that state and position. A worker that
  dies between commits loses no event: the next owner loads the last commit and applies
  the accepted topic from its offset again (see ``worker``).

This module is the stage without Kafka: chunks in, output lines and changelog batches
out. ``worker`` moves the bytes.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import dataclass

import orjson

from crm2stream.core.config import CoreConfig
from crm2stream.core.tables import STATE_TABLES
from crm2stream.core.validation import Rejection, declared_type
from crm2stream.engine.core import PUBLISH_ITEMS, Core, Processed
from crm2stream.engine.results import Counts, compact_json, dead_letter, duplicate
from crm2stream.kafka import changelog
from crm2stream.kafka.chunks import Chunk, after, decode_chunk
from crm2stream.kafka.names import Names
from crm2stream.kafka.outbox import Lines, Record


@dataclass(slots=True)
class Applied:
    """What a batch gives at once: its dead letters and its stream records."""

    records: list[Record]
    lines: list[Lines]
    counts: Counts
    #: events by (declared type, outcome): for the metrics
    outcomes: Counter[tuple[str, str]]


@dataclass(slots=True)
class Committed:
    """What a commit gives: the table topics' lines (written first), then its changelog
    batch."""

    lines: list[Lines]
    batch: changelog.BatchRecord


def _outcomes(
    taken: list[Chunk], sources: list[tuple[int, int, Chunk, int]], done: Processed
) -> Counter[tuple[str, str]]:
    outcome = ["accepted"] * len(sources)
    for index, _, _ in done.rejected:
        outcome[index] = "rejected"
    for index, _ in done.duplicates:
        outcome[index] = "duplicate"
    out = Counter((chunk.types[i], outcome[n]) for n, (_, _, chunk, i) in enumerate(sources))
    out.update((declared_type(raw), "rejected") for c in taken for _, _, _, raw in c.refused)
    return out


class TableStage:
    def __init__(self, cfg: CoreConfig, names: Names) -> None:
        self.cfg = cfg
        self.names = names
        self.core = Core(cfg)
        self.position = changelog.Position()
        #: where the last commit left the stage (a changelog batch starts there)
        self.committed = changelog.Position()
        #: the accepted event ids since the last commit (JSON arrays)
        self._accepted: list[bytes] = []

    @property
    def uncommitted(self) -> bool:
        """Whether anything was applied since the last commit."""
        return bool(self._accepted) or self.position != self.committed

    def restore(self, batches: list[changelog.BatchRecord]) -> None:
        """Load the state the changelog's batches add up to (on a fresh stage)."""
        if not batches:
            return
        parts = (part for batch in batches for part in batch.parts)
        seen = (orjson.loads(batch.accepted_ids) for batch in batches)
        self.position = batches[-1].position
        self.committed = copy.deepcopy(self.position)
        self.core.load(parts, seen, self.position.max_ts)

    def apply(self, records: list[tuple[int, bytes]]) -> Applied | None:
        """Apply accepted-topic records (offset, value), in offset order. None when every
        one was applied before."""
        next_offset = self.position.next_offset
        chunks = []
        for offset, value in records:
            if offset >= next_offset:
                chunks.append(decode_chunk(value))
                next_offset = offset + 1
        if next_offset == self.position.next_offset:
            return None
        return self.take(chunks, next_offset)

    def take(self, chunks: list[Chunk], next_offset: int | None = None) -> Applied:
        """Apply intake chunks, less what was taken from their partitions before; then the
        stage stands at ``next_offset`` of the accepted topic (a replay, which reads the
        input itself, leaves it where it is)."""
        position = copy.deepcopy(self.position)
        if next_offset is not None:
            position.next_offset = next_offset
        taken: list[Chunk] = []
        for whole in chunks:
            end = position.inputs.get(whole.partition, 0)
            chunk = after(whole, end)
            if chunk.offsets or chunk.refused:
                position.inputs[chunk.partition] = max(end, chunk.end)
                taken.append(chunk)
        sources = [(c.partition, o, c, i) for c in taken for i, o in enumerate(c.offsets)]
        lines = b"\n".join(c.lines for c in taken if c.offsets)
        done = self.core.process(lines, position.lines) if sources else Processed()
        position.lines += len(sources)
        records = self._dead_letters(taken, sources, lines, done)
        refused = sum(len(c.refused) for c in taken) + len(done.rejected)
        counts = Counts(done.accepted, refused, len(done.duplicates))
        outcomes = _outcomes(taken, sources, done)
        streams = self._streams(position)
        position.max_ts = self.core.max_ts
        totals = position.totals
        for name, value in counts.as_dict().items():
            totals[name] = totals.get(name, 0) + value
        self.position = position
        if done.accepted_ids and done.accepted_ids != b"[]":
            self._accepted.append(done.accepted_ids)
        return Applied(records, streams, counts, outcomes)

    def commit(self, publish: bool = True) -> Committed:
        """The table topics' lines of what changed since the last commit (none when not
        ``publish``: a replay builds tables nobody follows yet), and the changelog batch
        from the last commit's position to this one."""
        position = self.position
        lines = self._publication(position) if publish else self._skip_publication()
        parts = self.core.checkpoint(False)
        ids = b"[" + b",".join(a[1:-1] for a in self._accepted) + b"]"
        batch = changelog.BatchRecord(self.committed.next_offset, position, ids, parts)
        self._accepted = []
        self.committed = copy.deepcopy(position)
        return Committed(lines, batch)

    def _dead_letters(
        self,
        taken: list[Chunk],
        sources: list[tuple[int, int, Chunk, int]],
        lines: bytes,
        done: Processed,
    ) -> list[Record]:
        dead: list[tuple[int, int, bytes, Rejection]] = [
            (c.partition, o, raw, Rejection(reason, error))
            for c in taken
            for o, reason, error, raw in c.refused
        ]
        split = lines.split(b"\n") if done.rejected or done.duplicates else []

        def original(index: int) -> tuple[int, int, bytes]:
            partition, offset, chunk, i = sources[index]
            return partition, offset, chunk.originals.get(i, split[index])

        dead += [(*original(i), Rejection(r, e)) for i, r, e in done.rejected]
        dead += [(*original(i), duplicate(event_id)) for i, event_id in done.duplicates]
        dead.sort(key=lambda item: (item[0], item[1]))
        out = []
        for partition, offset, raw, why in dead:
            row = {"partition": partition, **dead_letter(offset, raw, why)}
            key = f"{partition}:{offset}".encode()
            out.append(Record(self.names.dlq, key, compact_json(row)))
        return out

    def _streams(self, position: changelog.Position) -> list[Lines]:
        """Score changes and marketing triggers, keyed by person, each carrying where the
        inputs stood after the batch that made it (header ``inputs``)."""
        names = list(self.names.streams)
        bases = [position.ends.get(name, 0) for name in names]
        headers = [("inputs", orjson.dumps({str(p): o for p, o in position.inputs.items()}))]
        out: list[Lines] = []
        for name, base, (count, ndjson) in zip(
            names, bases, self.core.score_changes(*bases), strict=True
        ):
            if count:
                position.ends[name] = base + count
                out.append(Lines(self.names.streams[name], "person_id", ndjson, headers))
        return out

    def _publication(self, position: changelog.Position) -> list[Lines]:
        if not self.core.begin_publication():
            return []
        out: list[Lines] = []
        while True:
            bases = [position.ends.get(table, 0) for table in STATE_TABLES]
            published = self.core.publish(bases, PUBLISH_ITEMS)
            if not any(count for count, _ in published):
                return out
            for table, base, (count, ndjson) in zip(STATE_TABLES, bases, published, strict=True):
                if count:
                    position.ends[table] = base + count
                    out.append(Lines(self.names.tables[table], "key", ndjson, tombstones=True))

    def _skip_publication(self) -> list[Lines]:
        """Consider everything published without rendering it."""
        self.core.begin_publication()
        return []
