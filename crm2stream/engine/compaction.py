"""Compacting the embedded engine's table topics, as Kafka compacts a compacted topic.

A table topic gets a record per changed key at every publication, so a long-running server
appends without end. Compaction keeps, of each key, only its latest record; offsets do not
change (a compacted part lists its records' offsets), so subscribers resume where they
were and see gaps, never different records at an offset. Tombstones (null values) are kept:
a subscriber that is behind must still learn that a key is gone.

Records are canonical JSON, ``{"at":...,"key":<JSON string>,"offset":N,"value":...}``, so
the key and the offset are found without parsing the value: a JSON string cannot hold an
unescaped ``"``, so the first ``,"offset":`` is the field.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from crm2stream.engine.store import Batch, Store

#: Bytes of compacted parts per write during a compaction.
WRITE_BYTES = 32 << 20
#: The first bytes of a compacted part: its records are not numbered from the part's key,
#: each carries its own offset.
COMPACTED = b"#compacted\n"
_KEY = b',"key":'
_OFFSET = b',"offset":'


def key_and_offset(record: bytes) -> tuple[bytes, int]:
    """A table-topic record's key (as its JSON string) and offset."""
    key_at = record.index(_KEY) + len(_KEY)
    offset_at = record.index(_OFFSET, key_at)
    end = offset_at + len(_OFFSET)
    stop = end
    while record[stop : stop + 1].isdigit():
        stop += 1
    return record[key_at:offset_at], int(record[end:stop])


def records(first: int, part: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, record) of a stored part, compacted or not."""
    if part.startswith(COMPACTED):
        for record in part[len(COMPACTED) :].split(b"\n"):
            yield key_and_offset(record)[1], record
    else:
        yield from enumerate(part.split(b"\n"), first)


def latest(parts: Iterable[tuple[int, bytes]]) -> dict[bytes, int]:
    """Each key's latest offset over a topic's parts (given in offset order)."""
    newest: dict[bytes, int] = {}
    for first, part in parts:
        for _, record in records(first, part):
            key, offset = key_and_offset(record)
            newest[key] = offset
    return newest


def compact(first: int, part: bytes, newest: dict[bytes, int]) -> bytes | None:
    """A part without the records a later one supersedes: unchanged (the same object) when
    none is, None when none is left."""
    kept: list[bytes] = []
    dropped = False
    for _, record in records(first, part):
        key, offset = key_and_offset(record)
        if newest.get(key, offset) > offset:
            dropped = True
        else:
            kept.append(record)
    if not dropped:
        return part
    return COMPACTED + b"\n".join(kept) if kept else None


def compact_topic(store: Store, topic: str, *, logged: bool) -> tuple[int, Batch]:
    """Rewrite a topic's parts without superseded records, a few parts per write, each
    write whole, so a crash leaves the topic partly compacted and still right. Returns
    the live keys and the last write, not yet made: the caller adds its positions."""
    newest = latest(store.output_parts(topic))
    batch, pending = store.batch(), 0
    for first, part in store.output_parts(topic):
        kept = compact(first, part, newest)
        if kept is part:
            continue
        batch.replace_part(topic, first, kept)
        pending += len(kept or b"")
        if pending >= WRITE_BYTES:
            store.write(batch, logged=logged)
            batch, pending = store.batch(), 0
    return len(newest), batch
