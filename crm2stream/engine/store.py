"""The embedded engine's storage: one rocksdict database holding the event log, the output
topics, the checkpointed facts and the positions, so that one WriteBatch can change any
of them atomically.

Key space (raw bytes):
  ``l/<first>``      a page of the log: up to ``PAGE_LINES`` raw input lines of one batch,
                     the first at log position ``first``, joined by newlines (so that
                     reading one line reads one page, not its whole batch)
  ``b/<start>``      how many lines the batch at ``start`` holds, when it takes more than
                     one page (a batch without it is one page: every batch written before
                     pages was)
  ``r/<start>``      the bytes received of that chunk's lines a log line could not hold
                     as they were (an array element spanning lines), for their dead
                     letters: a JSON object, index -> base64
  ``a/<start>``      when that chunk's lines arrived (microseconds since the epoch): what
                     ``future_timestamp`` is judged against, at ingest and at every replay
                     (chunks written before it was kept have none)
  ``e/<event_id>``   the start of the chunk that accepted the event: the all-time index
                     of accepted ids, read a chunk's ids at a time (an id is a duplicate
                     of a chunk when an earlier chunk accepted it; a chunk applied again
                     after a crash finds its own ids, not earlier ones)
  ``k/<start>``      the event_ids that chunk accepted, as directories written before the
                     index kept them (moved into ``e/`` on open)
  ``x/<identifier>\x1f<position>``
                     the log position of an accepted event naming the identifier
  ``g/<identifier>\x1f<identifier>``
                     a link between two identifiers that stands now, in both directions:
                     with ``x/``, what one person's history reads, and nothing else
  ``o/<topic>/<n>``  output records as NDJSON, n the offset of the first in the topic: a
                     batch's dead letters, score changes and triggers, or a part of a
                     publication of the table topics
  ``c/<seq>/<part>`` a part of checkpoint segment number seq (see ``segments``): the
                     facts records one checkpoint wrote
  ``i/<identifier>\x1f<seq>``
                     an identifier's body as checkpoint seq (or a batch ahead of it) wrote
                     it: its day buckets, ties, consent and sums
  ``t/<person id>``  the persons a person's relationship records in the table topic name,
                     written with them: what the next publication tombstones or keeps
  ``m/log``          log end, output ends, in-progress file ingests
  ``m/state``        the log position the checkpointed facts stand at, and the segments
"""

from __future__ import annotations

import base64
from collections.abc import Container, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import orjson
from rocksdict import (
    BlockBasedOptions,
    Cache,
    DBCompressionType,
    Options,
    Rdict,
    WriteBatch,
    WriteOptions,
)

from crm2stream.engine import compaction
from crm2stream.engine.results import EngineError


class StorageError(EngineError):
    """The data directory cannot be written (a full disk...): the engine stops rather
    than guess, and what it acknowledged before stays on disk."""


@contextmanager
def _storage(path: Path, doing: str) -> Iterator[None]:
    """RocksDB's failures (rocksdict raises them as plain exceptions) as one clear line."""
    try:
        yield
    except Exception as exc:
        if "No space left on device" in str(exc):
            raise StorageError(
                f"no space left on the device of {path} while {doing}: free some and start "
                "again (what was acknowledged is on disk and nothing is lost)"
            ) from exc
        if "IO error" in str(exc):
            raise StorageError(f"cannot write {path} while {doing}: {exc}") from exc
        raise


def _items(db: Rdict, start: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Raw-mode items from ``start`` on, one at a time: a log can be far larger than memory."""
    it = db.iter()
    it.seek(start)
    while it.valid():
        yield cast(bytes, it.key()), cast(bytes, it.value())
        it.next()


#: Values at least this large (log chunks, output batches) live in blob files.
BLOB_MIN_BYTES = 64 << 10

#: The key prefix of checkpoint segment parts.
SEGMENTS = b"c/"
#: The log: its pages, and the sizes of batches of more than one page.
LOG = b"l/"
BATCHES = b"b/"
#: Lines per page of the log: one line read reads about this many.
PAGE_LINES = 512
#: The index of accepted event ids, and where a chunk's ids were kept before it.
ACCEPTED = b"e/"
LEGACY_ACCEPTED = b"k/"
#: The indexes of one person's history: mentions of identifiers, links standing now.
MENTIONS = b"x/"
LINKS = b"g/"
#: Identifier bodies, each under its key and the checkpoint that wrote it
#: (``i/<identifier>\x1f<checkpoint, 8 hex digits>``; the core makes the keys).
BODIES = b"i/"
#: Each person's published ties: the persons its relationship records in the table topic
#: name (``t/<person id>``; the core makes the keys), written with those records.
PUBLISHED_TIES = b"t/"
#: Where checkpoint records were kept one per key before segments: cleared on rebuild.
LEGACY_RECORDS = b"s/"


def _position(value: int) -> bytes:
    return b"%016x" % value


def modest_options() -> Options:
    """RocksDB options with modest buffers (two memtables of 32 MiB, a block cache of
    32 MiB, bloom filters, LZ4), in raw mode: for a store whose hot data the process keeps
    elsewhere (the engine's in its core) or reads a key at a time (the API's read model)."""
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.set_write_buffer_size(32 << 20)
    options.set_max_write_buffer_number(2)
    table = BlockBasedOptions()
    table.set_block_cache(Cache(32 << 20))
    table.set_bloom_filter(10, False)
    options.set_block_based_table_factory(table)
    options.set_compression_type(DBCompressionType.lz4())
    return options


class Store:
    def __init__(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        options = modest_options()
        # Log chunks and output batches are megabytes each and never change: kept in blob
        # files, they are compressed once when flushed instead of at every compaction.
        options.set_enable_blob_files(True)
        options.set_min_blob_size(BLOB_MIN_BYTES)
        options.set_blob_compression_type(DBCompressionType.lz4())
        options.set_enable_blob_gc(True)
        self.path = path
        with _storage(path, "opening it"):
            self.db = Rdict(str(path / "db"), options)
        self._unlogged = WriteOptions()
        # a property at run time, though the type stubs declare a method
        self._unlogged.disable_wal = True  # type: ignore[method-assign, assignment]

    def close(self) -> None:
        with _storage(self.path, "closing it"):
            self.db.close()

    # -- meta ---------------------------------------------------------------------------
    def meta(self, name: str) -> dict[str, Any]:
        raw = cast(bytes | None, self.db.get(b"m/" + name.encode()))
        return {} if raw is None else dict(orjson.loads(raw))

    # -- batches ------------------------------------------------------------------------
    def batch(self) -> Write:
        return Write()

    def write(self, batch: Write, *, logged: bool = True) -> None:
        """Apply a batch atomically. ``logged=False`` skips the write-ahead log: until the
        next flush such a write lives only in memory, and a crash loses it (with every
        write after it: batches reach the disk whole and in order)."""
        with _storage(self.path, "writing"):
            self.db.write(batch.wb, None if logged else self._unlogged)

    def flush(self) -> None:
        """Persist every write so far, logged or not."""
        with _storage(self.path, "flushing"):
            self.db.flush()

    # -- reading ------------------------------------------------------------------------
    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """All (key without prefix, value) pairs under a prefix, in key order."""
        for key, value in _items(self.db, prefix):
            if not key.startswith(prefix):
                break
            yield key[len(prefix) :], value

    def chunks(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """Log chunks (the lines of one batch, joined by newlines) from the one starting
        at ``start`` on, as (first position, chunk). From a ``start`` inside a batch (a
        page's first line), the rest of that batch comes a page at a time."""
        pages = _items(self.db, LOG + _position(start))
        for key, page in pages:
            if not key.startswith(LOG):
                break
            size = cast(bytes | None, self.db.get(BATCHES + key[len(LOG) :]))
            if size is None:
                yield int(key[len(LOG) :], 16), page
                continue
            parts, lines = [page], page.count(b"\n") + 1
            while lines < int(size):
                _, page = next(pages)
                parts.append(page)
                lines += page.count(b"\n") + 1
            yield int(key[len(LOG) :], 16), b"\n".join(parts)

    def arrival(self, start: int) -> int | None:
        """When the lines of the chunk at ``start`` arrived, if the log recorded it."""
        raw = cast(bytes | None, self.db.get(b"a/" + _position(start)))
        return None if raw is None else int(raw)

    def originals(self, start: int) -> dict[int, bytes]:
        """The bytes received of the lines of the chunk at ``start`` the log holds
        otherwise, by index in the chunk."""
        raw = cast(bytes | None, self.db.get(b"r/" + _position(start)))
        if raw is None:
            return {}
        return {int(i): base64.b64decode(data) for i, data in orjson.loads(raw).items()}

    def chunk_at(self, position: int) -> tuple[int, list[bytes]] | None:
        """The log page holding ``position``: (its first position, its lines)."""
        it = self.db.iter()
        it.seek_for_prev(LOG + _position(position))
        if not it.valid() or not it.key().startswith(LOG):
            return None
        start = int(it.key()[2:], 16)
        lines = it.value().split(b"\n")
        return (start, lines) if position < start + len(lines) else None

    def segments(self, last: int) -> Iterator[bytes]:
        """The parts of the checkpoint segments numbered up to ``last`` (those a full one
        did not replace), oldest first, one at a time; a segment above ``last`` is one a
        crash left unfinished: not part of the checkpoint."""
        for key, part in self.scan(SEGMENTS):
            if int(key[:16], 16) > last:
                break
            yield part

    def accepted_before(self, event_ids: list[str], start: int) -> list[bool]:
        """Per id, whether a chunk before the one at ``start`` accepted it."""
        found = cast(
            list[bytes | None],
            self.db.get([ACCEPTED + event_id.encode() for event_id in event_ids]),
        )
        below = _position(start)
        return [at is not None and at < below for at in found]

    def bodies(self, keys: list[bytes]) -> list[bytes | None]:
        """The stored identifier bodies of these keys (None: not stored), in one read."""
        return self._get_many(keys)

    def published_ties(self, keys: list[bytes]) -> list[bytes | None]:
        """The stored published ties of these keys (None: not stored), in one read."""
        return self._get_many(keys)

    def _get_many(self, keys: list[bytes]) -> list[bytes | None]:
        wanted: list[str | int | float | bytes | bool] = list(keys)
        return cast(list[bytes | None], self.db.get(wanted))

    def mentions(self, identifier: str) -> list[int]:
        """The log positions of the accepted events naming an identifier, in order."""
        return [int(at, 16) for at, _ in self.scan(MENTIONS + identifier.encode() + b"\x1f")]

    def known(self, identifier: str) -> bool:
        """Whether an accepted event named this identifier."""
        return next(self.scan(MENTIONS + identifier.encode() + b"\x1f"), None) is not None

    def linked(self, identifier: str) -> list[str]:
        """The identifiers linked to this one now."""
        return [other.decode() for other, _ in self.scan(LINKS + identifier.encode() + b"\x1f")]

    def index_accepted_ids(self) -> int:
        """Move the accepted ids of a directory written before ``e/`` into it; how many
        chunks' ids moved. Done again after a crash, it writes the same keys again."""
        chunks = 0
        batch = self.batch()
        for key, value in self.scan(LEGACY_ACCEPTED):
            batch.accepted(int(key, 16), value)
            chunks += 1
            if chunks % 1_000 == 0:
                self.write(batch)
                batch = self.batch()
        batch.wb.delete_range(LEGACY_ACCEPTED, LEGACY_ACCEPTED[:-1] + b"0")
        self.write(batch)
        return chunks

    def outputs(self, topic: str, start: int = 0) -> Iterator[dict[str, Any]]:
        """The records of an output topic from offset ``start`` on."""
        for _, record in self.output_lines(topic, start):
            yield orjson.loads(record)

    def output_lines(self, topic: str, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """(offset, record as JSON) of an output topic from offset ``start`` on (a
        compacted table topic has gaps: see ``compaction``)."""
        for first, part in self.output_parts_from(topic, start):
            for offset, record in compaction.records(first, part or b""):
                if offset >= start:
                    yield offset, record

    def output_parts_from(
        self, topic: str, start: int, held: Container[int] = ()
    ) -> Iterator[tuple[int, bytes | None]]:
        """The stored parts of an output topic from the one that may hold offset
        ``start`` on, as (offset the part starts at, part); a part starting at an offset
        in ``held`` (one the caller holds already) comes as None, unread."""
        prefix = b"o/" + topic.encode() + b"/"
        it = self.db.iter()
        it.seek_for_prev(prefix + _position(start))
        if not it.valid() or not cast(bytes, it.key()).startswith(prefix):
            it.seek(prefix)
        while it.valid():
            key = cast(bytes, it.key())
            if not key.startswith(prefix):
                break
            first = int(key[len(prefix) :], 16)
            yield first, None if first in held else cast(bytes, it.value())
            it.next()

    def output_parts(self, topic: str) -> Iterator[tuple[int, bytes]]:
        """The stored parts of an output topic as (offset the part starts at, part)."""
        for key, value in self.scan(b"o/" + topic.encode() + b"/"):
            yield int(key, 16), value


class Write:
    """One atomic write: a log chunk, its outputs, positions and checkpointed records."""

    def __init__(self) -> None:
        self.wb = WriteBatch(raw_mode=True)

    def clear_derived(self) -> None:
        """Forget everything but the log: the start of an in-place replay."""
        derived = (
            b"c/",
            ACCEPTED,
            LEGACY_ACCEPTED,
            MENTIONS,
            LINKS,
            BODIES,
            PUBLISHED_TIES,
            b"o/",
            LEGACY_RECORDS,
            b"m/",
        )
        for prefix in derived:
            self.wb.delete_range(prefix, prefix[:-1] + b"0")

    def log_chunk(
        self, start: int, chunk: bytes, arrival: int | None, originals: dict[int, bytes]
    ) -> None:
        """Raw input lines (non-empty, joined by newlines), the first at ``start``, when
        they arrived, and the bytes received of those the log holds otherwise."""
        lines = chunk.split(b"\n")
        if len(lines) <= PAGE_LINES:
            self.wb.put(LOG + _position(start), chunk)
        else:
            for first in range(0, len(lines), PAGE_LINES):
                page = b"\n".join(lines[first : first + PAGE_LINES])
                self.wb.put(LOG + _position(start + first), page)
            self.wb.put(BATCHES + _position(start), b"%d" % len(lines))
        if originals:
            kept = {str(i): base64.b64encode(raw).decode() for i, raw in originals.items()}
            self.wb.put(b"r/" + _position(start), orjson.dumps(kept))
        if arrival is not None:
            self.wb.put(b"a/" + _position(start), b"%d" % arrival)

    def accepted(self, start: int, event_ids: bytes) -> None:
        """The event ids the chunk at ``start`` accepted (a JSON array), into the index."""
        at = _position(start)
        for event_id in orjson.loads(event_ids):
            self.wb.put(ACCEPTED + event_id.encode(), at)

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
        self.wb.put(b"o/" + topic.encode() + b"/" + _position(first), records)

    def replace_part(self, topic: str, first: int, part: bytes | None) -> None:
        """A compacted part in place of the part stored at ``first`` (None: none left)."""
        key = b"o/" + topic.encode() + b"/" + _position(first)
        if part is None:
            self.wb.delete(key)
        else:
            self.wb.put(key, part)

    def segment_part(self, seq: int, n: int, part: bytes) -> None:
        """Part ``n`` of checkpoint segment number ``seq``."""
        self.wb.put(SEGMENTS + _position(seq) + b"/" + b"%08x" % n, part)

    def bodies(self, bodies: list[tuple[bytes, bytes]]) -> None:
        """Identifier bodies a checkpoint stores, as (key, record)."""
        put = self.wb.put
        for key, record in bodies:
            put(key, record)

    def published_ties(self, ties: list[tuple[bytes, bytes | None]]) -> None:
        """Published ties a publication wrote, as (key, record; None: delete the key)."""
        put, delete = self.wb.put, self.wb.delete
        for key, record in ties:
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
            self.wb.delete_range(SEGMENTS, SEGMENTS + _position(below))
            self.wb.delete_range(LEGACY_RECORDS, LEGACY_RECORDS[:-1] + b"0")
        if above is not None:
            self.wb.delete_range(SEGMENTS + _position(above + 1), SEGMENTS[:-1] + b"0")

    def meta(self, name: str, value: dict[str, Any]) -> None:
        self.wb.put(b"m/" + name.encode(), orjson.dumps(value))
