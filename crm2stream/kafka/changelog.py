"""The table stage's changelog topic: its state and its position, in one record per commit.

A commit's record (a "batch" here: the batches applied since the previous commit) holds
the facts they changed (the core's checkpoint parts), the event ids they accepted, and
where the stage stands after them: the next accepted-topic offset, how
far it has taken each input partition, its totals and the numbering of its outputs. State
and position travel together, so a worker that takes over the stage (or restarts after
``kill -9``) is exactly where the record says, whatever instant the previous one died at.
The same idea as the embedded engine's single WriteBatch, with Kafka as the disk.

A record larger than a Kafka message is written as frames; a reader applies a batch only
once it has every frame, and only if it starts where the previous batch ended: the
frames of a batch whose writer died half way are ignored, and so is a batch written twice.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

#: payload bytes per frame: under Kafka's default message size (1 MiB) with room to spare
FRAME_BYTES = 900_000
_LEN = struct.Struct(">I")


@dataclass(slots=True)
class Position:
    """Where the table stage stands."""

    #: the next offset of the accepted topic to apply
    next_offset: int = 0
    #: lines applied (the core numbers events by it)
    lines: int = 0
    #: per input partition: one past the highest offset taken
    inputs: dict[int, int] = field(default_factory=dict)
    #: events accepted, lines refused, duplicates: since the beginning
    totals: dict[str, int] = field(default_factory=dict)
    #: per output topic: records written (the next record's number)
    ends: dict[str, int] = field(default_factory=dict)
    max_ts: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "next_offset": self.next_offset,
            "lines": self.lines,
            "inputs": {str(p): o for p, o in self.inputs.items()},
            "totals": self.totals,
            "ends": self.ends,
            "max_ts": self.max_ts,
        }

    @classmethod
    def of(cls, data: dict[str, Any]) -> Position:
        inputs = {int(p): o for p, o in data["inputs"].items()}
        return cls(
            data["next_offset"], data["lines"], inputs, data["totals"], data["ends"], data["max_ts"]
        )


@dataclass(slots=True)
class BatchRecord:
    """One batch's record: where it started, where it leaves the stage, what it changed."""

    start: int
    position: Position
    accepted_ids: bytes
    parts: list[bytes]


def encode(batch: BatchRecord) -> list[bytes]:
    """The frames of a batch's record."""
    head = orjson.dumps({"position": batch.position.as_json(), "parts": len(batch.parts)})
    body = b"".join(
        _LEN.pack(len(piece)) + piece for piece in (head, batch.accepted_ids, *batch.parts)
    )
    pieces = [body[i : i + FRAME_BYTES] for i in range(0, len(body), FRAME_BYTES)] or [b""]
    end = batch.position.next_offset
    return [
        orjson.dumps({"start": batch.start, "end": end, "frame": i, "frames": len(pieces)})
        + b"\n"
        + piece
        for i, piece in enumerate(pieces)
    ]


def _decode(start: int, body: bytes) -> BatchRecord:
    pieces: list[bytes] = []
    at = 0
    while at < len(body):
        (size,) = _LEN.unpack_from(body, at)
        pieces.append(body[at + 4 : at + 4 + size])
        at += 4 + size
    head = orjson.loads(pieces[0])
    return BatchRecord(start, Position.of(head["position"]), pieces[1], pieces[2:])


def frame_header(value: bytes) -> dict[str, int]:
    """A frame's header: its batch's ``start`` and ``end`` (accepted offsets), its number
    (``frame``) and how many the batch has (``frames``)."""
    header: dict[str, int] = orjson.loads(value.partition(b"\n")[0])
    return header


def announced(first: bytes) -> Position:
    """The position a batch leaves the stage at, from its first frame alone: for a follower
    that only wants to know how far the stage got, without reading the whole batch."""
    if frame_header(first)["frame"] != 0:
        raise ValueError("not the first frame of a batch")
    piece = first.partition(b"\n")[2]
    (size,) = _LEN.unpack_from(piece, 0)
    if 4 + size > len(piece):
        raise ValueError("the batch's head spans frames: read the batch whole")
    return Position.of(orjson.loads(piece[4 : 4 + size])["position"])


class ChangelogError(Exception):
    """The changelog does not hold a gapless history."""


class Reader:
    """Whole batches from changelog frames read in order (see the module's docstring)."""

    def __init__(self) -> None:
        self.next_offset: int | None = None
        self._pending: list[bytes] = []
        self._header: dict[str, int] | None = None

    def feed(self, frames: Iterable[bytes]) -> Iterator[BatchRecord]:
        for value in frames:
            head, _, piece = value.partition(b"\n")
            header = orjson.loads(head)
            if header["frame"] == 0:
                self._header, self._pending = header, []
            elif self._header is None or header["start"] != self._header["start"]:
                continue  # a frame of a batch whose first frame we did not see
            self._pending.append(piece)
            if len(self._pending) < header["frames"]:
                continue
            assert self._header is not None
            start = self._header["start"]
            body = b"".join(self._pending)
            self._header, self._pending = None, []
            if self.next_offset is not None and start < self.next_offset:
                continue  # written again by a worker that redid it from an older state
            if self.next_offset is not None and start > self.next_offset:
                raise ChangelogError(
                    f"the changelog jumps from accepted offset {self.next_offset} to {start}"
                )
            batch = _decode(start, body)
            self.next_offset = batch.position.next_offset
            yield batch
