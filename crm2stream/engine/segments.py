"""Checkpoint segments: the facts records one checkpoint writes, framed back to back in
parts of a few megabytes (the compiled core frames its own the same way, in
``native/src/checkpoint.rs``).

A frame is the table byte (``i`` identifier, ``s`` share, ``p`` pair, ``r`` referrals,
``e`` emitted), then the key and the record, each preceded by its length as a varint.
Every record is the whole value of its key: reading segments oldest first, the latest
record of a key is the one that stands.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: The tables, in the order they load (shares, pairs and referrals name identifiers).
TABLES = (b"i", b"s", b"p", b"r", b"e")
#: A part is closed once it holds this many bytes.
PART_BYTES = 8 << 20

Record = tuple[bytes, bytes, bytes]  # (table, key, record)


class CorruptSegment(ValueError):
    pass


@dataclass(slots=True)
class Segments:
    """Where a store's segments stand: the last segment number, the bytes written since
    the last full segment (that one included) and the size of that full segment.

    Incremental segments pile up until they outweigh the last full one; then one full
    segment replaces them all, so loading reads at most about twice the live records
    while a checkpoint writes about what changed."""

    seq: int = 0
    bytes: int = 0
    full_bytes: int = 0

    def next_is_full(self) -> bool:
        return self.full_bytes == 0 or self.bytes > 2 * self.full_bytes

    def written(self, size: int, full: bool) -> int:
        """Account for a segment of ``size`` bytes; its number."""
        self.seq += 1
        self.bytes = size if full else self.bytes + size
        if full:
            self.full_bytes = size
        return self.seq


def _varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def frame(records: Iterable[Record]) -> list[bytes]:
    """Records as segment parts."""
    parts: list[bytes] = []
    current = bytearray()
    for table, key, record in records:
        current += table
        _varint(current, len(key))
        current += key
        _varint(current, len(record))
        current += record
        if len(current) >= PART_BYTES:
            parts.append(bytes(current))
            current = bytearray()
    if current:
        parts.append(bytes(current))
    return parts


def _field(part: bytes, at: int) -> tuple[bytes, int]:
    length = shift = 0
    while True:
        if at >= len(part) or shift > 63:
            raise CorruptSegment("checkpoint frame ends early")
        byte = part[at]
        at += 1
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    if at + length > len(part):
        raise CorruptSegment("checkpoint frame ends early")
    return part[at : at + length], at + length


def read(parts: Iterable[bytes]) -> dict[bytes, list[tuple[bytes, bytes]]]:
    """Per table, the latest record of each key across parts given oldest first, in the
    order keys were first written."""
    latest: dict[bytes, dict[bytes, bytes]] = {table: {} for table in TABLES}
    for part in parts:
        at = 0
        while at < len(part):
            table = part[at : at + 1]
            if table not in latest:
                raise CorruptSegment(f"unknown checkpoint table {table!r}")
            key, at = _field(part, at + 1)
            record, at = _field(part, at)
            latest[table][key] = record
    return {table: list(records.items()) for table, records in latest.items()}
