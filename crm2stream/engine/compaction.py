"""Compacting the embedded engine's table topics, as Kafka compacts a compacted topic.

A table topic gets a record per changed key at every publication, so a long-running server
appends without end. Compaction keeps, of each key, only its latest record; offsets do not
change (a compacted part lists its records' offsets), so subscribers resume where they
were and see gaps, never different records at an offset. Tombstones (null values) are kept:
a subscriber that is behind must still learn that a key is gone.

Records are canonical JSON, ``{"at":...,"key":<JSON string>,"offset":N,"value":...}``, so
the key and the offset are found without parsing the value: a JSON string cannot hold an
unescaped ``"``, so the first ``,"offset":`` is the field. A compaction reads the whole
topic twice (each key's latest offset, then every part rewritten), so that byte work is
compiled (``native/src/compaction.rs``); reading a topic back uses ``records`` here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import orjson

from crm2stream._native import TopicLatest

if TYPE_CHECKING:
    from crm2stream.engine.store import Store
from crm2stream.engine.write import Write

#: Bytes of compacted parts per write during a compaction.
WRITE_BYTES = 32 << 20
#: The first bytes of a compacted part: its records are not numbered from the part's key,
#: each carries its own offset.
COMPACTED = b"#compacted\n"
_KEY = b',"key":'
_OFFSET = b',"offset":'
_VALUE = b',"value":'


def key_and_offset(record: bytes) -> tuple[bytes, int]:
    """A table-topic record's key (as its JSON string) and offset."""
    key_at = record.index(_KEY) + len(_KEY)
    offset_at = record.index(_OFFSET, key_at)
    end = offset_at + len(_OFFSET)
    stop = end
    while record[stop : stop + 1].isdigit():
        stop += 1
    return record[key_at:offset_at], int(record[end:stop])


def split_record(record: bytes) -> tuple[str, bytes | None]:
    """A table-topic record's key and its value's bytes (None: a tombstone), found as
    ``key_and_offset`` finds the key: the value runs from the ``,"value":`` after the
    offset to the closing brace."""
    key_at = record.index(_KEY) + len(_KEY)
    offset_at = record.index(_OFFSET, key_at)
    value_at = record.index(_VALUE, offset_at) + len(_VALUE)
    key = orjson.loads(record[key_at:offset_at])
    if not isinstance(key, str) or not record.endswith(b"}"):
        raise ValueError(f"not a table record: {record[:200]!r}")
    value = record[value_at:-1]
    return key, None if value == b"null" else value


def records(first: int, part: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, record) of a stored part, compacted or not."""
    if part.startswith(COMPACTED):
        for record in part[len(COMPACTED) :].split(b"\n"):
            yield key_and_offset(record)[1], record
    else:
        yield from enumerate(part.split(b"\n"), first)


def compact_topic(store: Store, topic: str, *, logged: bool) -> tuple[int, Write]:
    """Rewrite a topic's parts without superseded records, a few parts per write, each
    write whole, so a crash leaves the topic partly compacted and still right. Returns
    the live keys and the last write, not yet made: the caller adds its positions."""
    newest = TopicLatest()
    for first, part in store.output_parts(topic):
        newest.add(first, part)
    batch, pending = store.batch(), 0
    for first, part in store.output_parts(topic):
        kept = newest.compact(first, part)
        if kept is part:
            continue
        batch.replace_part(topic, first, kept)
        pending += len(kept or b"")
        if pending >= WRITE_BYTES:
            store.write(batch, logged=logged)
            batch, pending = store.batch(), 0
    return len(newest), batch
