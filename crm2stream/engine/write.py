"""One atomic write to the embedded engine's store: a log chunk, its outputs, positions and
checkpointed records, as one rocksdict WriteBatch (the keys are laid out in ``keyspace``)."""

from __future__ import annotations

import base64
from typing import Any

import orjson
from rocksdict import WriteBatch

from crm2stream.engine.keyspace import (
    ACCEPTED,
    ARRIVALS,
    BATCHES,
    DERIVED,
    LEGACY_RECORDS,
    LOG,
    META,
    ORIGINALS,
    PAGE_LINES,
    SEGMENTS,
    end_of,
    key_number,
    output_prefix,
)


class Write:
    """One atomic write: a log chunk, its outputs, positions and checkpointed records."""

    def __init__(self) -> None:
        self.wb = WriteBatch(raw_mode=True)

    def clear_derived(self) -> None:
        """Forget everything but the log: the start of an in-place replay."""
        for prefix in DERIVED:
            self.wb.delete_range(prefix, end_of(prefix))

    def log_chunk(
        self, start: int, chunk: bytes, arrival: int | None, originals: dict[int, bytes]
    ) -> None:
        """Raw input lines (non-empty, joined by newlines), the first at ``start``, when
        they arrived, and the bytes received of those the log holds otherwise."""
        lines = chunk.split(b"\n")
        if len(lines) <= PAGE_LINES:
            self.wb.put(LOG + key_number(start), chunk)
        else:
            for first in range(0, len(lines), PAGE_LINES):
                page = b"\n".join(lines[first : first + PAGE_LINES])
                self.wb.put(LOG + key_number(start + first), page)
            self.wb.put(BATCHES + key_number(start), b"%d" % len(lines))
        if originals:
            kept = {str(i): base64.b64encode(raw).decode() for i, raw in originals.items()}
            self.wb.put(ORIGINALS + key_number(start), orjson.dumps(kept))
        if arrival is not None:
            self.wb.put(ARRIVALS + key_number(start), b"%d" % arrival)

    def accepted(self, start: int, event_ids: bytes) -> None:
        """The event ids the chunk at ``start`` accepted (a JSON array), into the index, in
        key order: RocksDB inserts keys that come in order into its memtable several times
        faster than keys in any order (3 million random index keys in batches of 150,000:
        6.0 s unsorted, 1.4 s sorted), and the core hands its own keys over sorted."""
        at = key_number(start)
        put = self.wb.put
        for event_id in sorted(orjson.loads(event_ids)):
            put(ACCEPTED + event_id.encode(), at)

    def indexes(self, mentions: list[bytes], links: list[tuple[bytes, bool]]) -> None:
        """The mention and link keys a batch indexes (``Core.take_indexes``): a link that
        no longer stands is deleted."""
        put, delete = self.wb.put, self.wb.delete
        for key in mentions:
            put(key, b"")
        for key, stands in links:
            if stands:
                put(key, b"")
            else:
                delete(key)

    def outputs(self, topic: str, first: int, records: bytes) -> None:
        """Output records of a topic as NDJSON, the first of them at offset ``first``."""
        self.wb.put(output_prefix(topic) + key_number(first), records)

    def replace_part(self, topic: str, first: int, part: bytes | None) -> None:
        """A compacted part in place of the part stored at ``first`` (None: none left)."""
        key = output_prefix(topic) + key_number(first)
        if part is None:
            self.wb.delete(key)
        else:
            self.wb.put(key, part)

    def segment_part(self, seq: int, n: int, part: bytes) -> None:
        """Part ``n`` of checkpoint segment number ``seq``."""
        self.wb.put(SEGMENTS + key_number(seq) + b"/" + b"%08x" % n, part)

    def bodies(self, bodies: list[tuple[bytes, bytes]]) -> None:
        """Identifier bodies a checkpoint stores, as (key, record)."""
        put = self.wb.put
        for key, record in bodies:
            put(key, record)

    def published_keys(self, keys: list[tuple[bytes, bytes | None]]) -> None:
        """Published ties and anchors a publication wrote, as (key, record; None: delete
        the key)."""
        put, delete = self.wb.put, self.wb.delete
        for key, record in keys:
            if record is None:
                delete(key)
            else:
                put(key, record)

    def delete(self, keys: list[bytes]) -> None:
        """Delete these keys (the bodies a committed checkpoint replaced)."""
        delete = self.wb.delete
        for key in keys:
            delete(key)

    def drop_segments(self, below: int | None = None, above: int | None = None) -> None:
        """Forget the segments numbered below ``below`` (a full one replaced them, and any
        per-key records of old with them) or above ``above`` (a crash left them
        unfinished). The writes of a batch apply in order: call it before the puts."""
        if below is not None:
            self.wb.delete_range(SEGMENTS, SEGMENTS + key_number(below))
            self.wb.delete_range(LEGACY_RECORDS, end_of(LEGACY_RECORDS))
        if above is not None:
            self.wb.delete_range(SEGMENTS + key_number(above + 1), end_of(SEGMENTS))

    def meta(self, name: str, value: dict[str, Any]) -> None:
        self.wb.put(META + name.encode(), orjson.dumps(value))
