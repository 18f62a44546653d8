"""What processing a batch of input lines gives back: counts, and per line why it was not
applied (the dead letters)."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from crm2stream.core.tables import Row
from crm2stream.core.validation import Rejection


class EngineError(Exception):
    """A problem the user must fix (wrong settings for this data directory...)."""


@dataclass(slots=True)
class Counts:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0

    def add(self, other: Counts) -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.duplicates += other.duplicates

    def as_dict(self) -> dict[str, int]:
        return {"accepted": self.accepted, "rejected": self.rejected, "duplicates": self.duplicates}


@dataclass(slots=True)
class BatchOutput:
    counts: Counts
    #: how many lines the batch held
    lines: int
    #: the accepted event ids, as a JSON array
    accepted_ids: bytes
    #: per output topic: how many new records, and the records as NDJSON
    records: dict[str, tuple[int, bytes]]
    #: the lines rejected or found duplicate: (index in the batch, why), in index order
    dead: list[tuple[int, Rejection]]
    #: the store keys of the mentions and links it indexes (``Core.take_indexes``)
    indexes: tuple[list[bytes], list[tuple[bytes, bool]]]
    #: identifier bodies written ahead of the next checkpoint to keep the cache's
    #: budget (``Core.evict``), as (store key, record)
    bodies: list[tuple[bytes, bytes]]


def duplicate(event_id: str) -> Rejection:
    return Rejection("duplicate", f"event_id {event_id!r} was accepted before; not applied again")


def dead_letter(position: int, line: bytes, rejection: Rejection) -> Row:
    """A dead-letter row: the reason, the error and the original bytes."""
    row: Row = {"offset": position, "reason": rejection.reason, "error": rejection.error}
    try:
        row["line"] = line.decode("utf-8")
    except UnicodeDecodeError:
        row["line_base64"] = base64.b64encode(line).decode("ascii")
    return row


def ndjson(rows: Iterable[Row]) -> bytes:
    """Rows as NDJSON, written into one buffer as they come. Not ``b"\\n".join`` of
    ``orjson.dumps``: each bytes object orjson returns keeps the few KiB block it was
    written in, so a list of 50,000 small records holds some 200 MB (measured), while one
    buffer reuses that block for every row."""
    out = bytearray()
    for row in rows:
        if out:
            out += b"\n"
        out += orjson.dumps(row)
    return bytes(out)


def compact_json(value: Any) -> bytes:
    """``orjson.dumps`` copied into a bytes object of its own size, to keep many (see
    ``ndjson``)."""
    return bytes(memoryview(orjson.dumps(value)))
