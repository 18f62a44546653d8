"""The intake stage's output: one record per input partition per batch, on the accepted topic.

The intake validates every input record (pydantic, from bytes) where the input is
partitioned, so that work scales with partitions and workers. It does not write the
dead-letter topic itself: it forwards, in one chunk, the valid lines (newline-joined, as the
core takes them) and the verdicts on the others, each with its input offset. The table
stage writes every dead letter, and drops whatever it has taken from an input partition
before (an intake that restarts offers its uncommitted records again): so each input record
is applied, or dead-lettered, exactly once.

A chunk is a JSON header line, then the valid lines. A valid JSON document may span lines
(pretty-printed): its line breaks are white space between tokens, so they become spaces,
and the header keeps the original bytes for the dead-letter topic.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson

from crm2stream.core.config import CoreConfig
from crm2stream.core.events import timestamp_micros
from crm2stream.core.validation import Rejection, decode, too_far_ahead

#: (input offset, original bytes, the record's timestamp in milliseconds: when the broker
#: appended it, the input topic being ``LogAppendTime``, so its arrival)
Record = tuple[int, bytes, int]


@dataclass(slots=True)
class Chunk:
    """What the intake forwarded from one input partition."""

    partition: int
    #: input offsets of the valid lines, in order
    offsets: list[int]
    #: the valid lines, newline-joined
    lines: bytes
    #: the event type of each valid line (for the metrics)
    types: list[str] = field(default_factory=list)
    #: (input offset, reason, error, original bytes) of the lines refused
    refused: list[tuple[int, str, str, bytes]] = field(default_factory=list)
    #: original bytes of valid lines whose line breaks became spaces, by index
    originals: dict[int, bytes] = field(default_factory=dict)

    @property
    def end(self) -> int:
        """One past the highest input offset the chunk covers."""
        last = [*self.offsets[-1:], *(r[0] for r in self.refused[-1:])]
        return max(last) + 1 if last else 0


#: input bytes per chunk: a chunk is one accepted-topic record
CHUNK_BYTES = 1 << 20


def sized(records: Sequence[Record], limit: int = CHUNK_BYTES) -> list[Sequence[Record]]:
    """Consecutive runs of records of at most ``limit`` bytes (a larger record alone)."""
    runs: list[Sequence[Record]] = []
    start, size = 0, 0
    for i, (_, value, _) in enumerate(records):
        if size and size + len(value) > limit:
            runs.append(records[start:i])
            start, size = i, 0
        size += len(value)
    if start < len(records):
        runs.append(records[start:])
    return runs


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def validate(partition: int, records: Sequence[Record], cfg: CoreConfig) -> Chunk:
    """Validate one partition's records, in offset order: the contract, and each event's
    time against its record's arrival (``validation.too_far_ahead``)."""
    chunk = Chunk(partition, [], b"")
    types = chunk.types
    lines: list[bytes] = []
    for offset, value, timestamp_ms in records:
        line = value.rstrip(b"\r\n")
        if not line.strip():
            chunk.refused.append((offset, "malformed_json", "not JSON: empty record", value))
            continue
        verdict = decode(line, cfg.currency)
        if not isinstance(verdict, Rejection):
            occurred = timestamp_micros(verdict.occurred_at)
            arrival = timestamp_ms * 1000
            verdict = too_far_ahead(occurred, arrival, cfg.future_tolerance_seconds) or verdict
        if isinstance(verdict, Rejection):
            chunk.refused.append((offset, verdict.reason, verdict.error, value))
            continue
        if b"\n" in line or b"\r" in line:
            chunk.originals[len(lines)] = value
            line = line.replace(b"\r", b" ").replace(b"\n", b" ")
        chunk.offsets.append(offset)
        types.append(verdict.type)
        lines.append(line)
    chunk.lines = b"\n".join(lines)
    return chunk


def validate_partitions(
    records: Mapping[int, Sequence[Record]], cfg: CoreConfig, limit: int = CHUNK_BYTES
) -> list[Chunk]:
    """The chunks of records read from several input partitions (each in offset order):
    partition by partition, each cut into runs of at most ``limit`` bytes."""
    return [
        validate(partition, run, cfg)
        for partition, run_of_partition in sorted(records.items())
        for run in sized(run_of_partition, limit)
    ]


def encode(chunk: Chunk) -> bytes:
    header = {
        "partition": chunk.partition,
        "offsets": chunk.offsets,
        "types": chunk.types,
        "refused": [[o, reason, error, _b64(raw)] for o, reason, error, raw in chunk.refused],
        "originals": {str(i): _b64(raw) for i, raw in chunk.originals.items()},
    }
    return orjson.dumps(header) + b"\n" + chunk.lines


def decode_chunk(value: bytes) -> Chunk:
    head, _, lines = value.partition(b"\n")
    header = orjson.loads(head)
    refused = [
        (o, reason, error, base64.b64decode(raw)) for o, reason, error, raw in header["refused"]
    ]
    originals = {int(i): base64.b64decode(raw) for i, raw in header["originals"].items()}
    return Chunk(header["partition"], header["offsets"], lines, header["types"], refused, originals)


def after(chunk: Chunk, end: int) -> Chunk:
    """The part of a chunk at input offsets ``end`` and beyond (the rest was taken before)."""
    if not chunk.offsets or chunk.offsets[0] >= end:
        keep = 0
    else:
        keep = next((i for i, o in enumerate(chunk.offsets) if o >= end), len(chunk.offsets))
    lines = chunk.lines.split(b"\n")[keep:] if keep else None
    return Chunk(
        chunk.partition,
        chunk.offsets[keep:],
        chunk.lines if lines is None else b"\n".join(lines),
        chunk.types[keep:],
        [r for r in chunk.refused if r[0] >= end],
        {i - keep: raw for i, raw in chunk.originals.items() if i >= keep},
    )
