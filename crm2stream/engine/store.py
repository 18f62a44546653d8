"""The embedded engine's storage: one rocksdict database holding the event log, the output
topics, the checkpointed facts and the positions, so that one WriteBatch (``write.Write``)
can change any of them atomically. Its keys are laid out in ``keyspace``.
"""

from __future__ import annotations

import base64
from collections.abc import Container, Iterable, Iterator
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
    RdictIter,
    WriteOptions,
)

from crm2stream.engine import compaction
from crm2stream.engine.keyspace import (
    ACCEPTED,
    ANCHORS,
    ARRIVALS,
    BATCHES,
    BLOB_MIN_BYTES,
    LEGACY_ACCEPTED,
    LINKS,
    LOG,
    MENTIONS,
    META,
    ORIGINALS,
    SEGMENTS,
    end_of,
    key_number,
    output_prefix,
)
from crm2stream.engine.results import EngineError
from crm2stream.engine.write import Write


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


def _page_at(it: RdictIter, position: int) -> tuple[int, list[bytes]] | None:
    """The log page holding ``position`` (its first position, its lines), sought with ``it``."""
    it.seek_for_prev(LOG + key_number(position))
    if not it.valid() or not it.key().startswith(LOG):
        return None
    start = int(it.key()[len(LOG) :], 16)
    lines = it.value().split(b"\n")
    return (start, lines) if position < start + len(lines) else None


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
        # Log pages, output batches and checkpoint parts never change: kept in blob
        # files, they are compressed once when flushed instead of at every compaction.
        # The few identifier bodies as large (an identifier with years of daily activity)
        # are blobs too; each checkpoint writes them anew, and blob garbage collection
        # reclaims the versions it replaced.
        options.set_enable_blob_files(True)
        options.set_min_blob_size(BLOB_MIN_BYTES)
        options.set_blob_compression_type(DBCompressionType.lz4())
        options.set_enable_blob_gc(True)
        # Most keys a batch writes land all over the key space (event ids, mentions,
        # bodies), so every compaction of level 0 into the level below rewrites most of
        # it. Compacting level 0 at 16 files instead of 4 rewrites it a quarter as often:
        # the first 3M events of the scale file took 137 s instead of 156 s, and
        # compactions 19 s of CPU instead of 38 (run side by side, one core each). A
        # point read looks in more files, each behind a bloom filter.
        options.set_level_zero_file_num_compaction_trigger(16)
        options.set_level_zero_slowdown_writes_trigger(40)
        options.set_level_zero_stop_writes_trigger(64)
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
        raw = cast(bytes | None, self.db.get(META + name.encode()))
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
        pages = _items(self.db, LOG + key_number(start))
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
        raw = cast(bytes | None, self.db.get(ARRIVALS + key_number(start)))
        return None if raw is None else int(raw)

    def originals(self, start: int) -> dict[int, bytes]:
        """The bytes received of the lines of the chunk at ``start`` the log holds
        otherwise, by index in the chunk."""
        raw = cast(bytes | None, self.db.get(ORIGINALS + key_number(start)))
        if raw is None:
            return {}
        return {int(i): base64.b64decode(data) for i, data in orjson.loads(raw).items()}

    def chunk_at(self, position: int) -> tuple[int, list[bytes]] | None:
        """The log page holding ``position``: (its first position, its lines)."""
        return _page_at(self.db.iter(), position)

    def lines_at(self, positions: Iterable[int]) -> Iterator[tuple[int, bytes | None]]:
        """The log lines at these positions, in ascending order: (position, line), the
        line None when the log holds none there. One iterator serves them all, and a page
        is read once for the positions it holds: making an iterator costs about as much as
        reading a page, and a person's history asks for hundreds."""
        it = self.db.iter()
        page: tuple[int, list[bytes]] | None = None
        for position in sorted(positions):
            if page is None or not page[0] <= position < page[0] + len(page[1]):
                page = _page_at(it, position)
            yield position, None if page is None else page[1][position - page[0]]

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
        below = key_number(start)
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

    def anchor(self, person_id: str) -> str | None:
        """The identifier anchoring a person the table topics hold (None: none they hold)."""
        raw = cast(bytes | None, self.db.get(ANCHORS + person_id.encode()))
        return None if raw is None else raw.decode()

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
        batch.wb.delete_range(LEGACY_ACCEPTED, end_of(LEGACY_ACCEPTED))
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
        prefix = output_prefix(topic)
        it = self.db.iter()
        it.seek_for_prev(prefix + key_number(start))
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
        for key, value in self.scan(output_prefix(topic)):
            yield int(key, 16), value
