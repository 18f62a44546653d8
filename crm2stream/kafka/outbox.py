"""Output records to Kafka as whole record batches, built off the event loop.

A table publication is about a dozen records per event. One producer ``send`` per record
costs a future, a Python murmur2 and a metadata check each, and that was most of a
worker's time. Here the records are grouped per topic partition into Kafka record batches
on the table stage's thread, and the event loop only submits whole batches and awaits
them. NDJSON lines (nearly every record) are turned into record batches by the compiled
helper (each line's key read, partitioned as Kafka's default partitioner does, the batch
framed and checksummed) without the interpreter; the few single records (dead letters)
go through aiokafka's own ``BatchBuilder``.

Records of one topic partition keep their order: batches are made and submitted in
order, and aiokafka sends a partition's batches one after the other.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from crm2stream._native import kafka_partition, record_batches

Headers = Sequence[tuple[str, bytes]]

#: the bytes of one record batch: under the broker's default max.message.bytes (1 MiB)
BATCH_BYTES = 512 << 10


@dataclass(slots=True)
class Record:
    topic: str
    key: bytes
    #: None: a tombstone
    value: bytes | None
    headers: Headers = ()


@dataclass(slots=True)
class Lines:
    """NDJSON records of one topic, each keyed by the string value of its ``key_field``."""

    topic: str
    key_field: str
    ndjson: bytes
    headers: Headers = ()
    #: a table topic: a line whose value is null is written as a tombstone, with its
    #: ``at`` and ``offset`` in the headers
    tombstones: bool = False


class RawBatch:
    """A record batch made whole by the compiled helper, in the shape aiokafka's producer
    takes a ``BatchBuilder`` (``send_batch``): closed, so nothing is appended to it."""

    __slots__ = ("_buffer", "_count")

    def __init__(self, buffer: bytes, count: int) -> None:
        self._buffer, self._count = buffer, count

    def append(self, **_: Any) -> None:
        return None  # full: the producer starts a batch of its own

    def close(self) -> None:
        pass

    def closed(self) -> bool:
        return True

    def size(self) -> int:
        return len(self._buffer)

    def record_count(self) -> int:
        return self._count

    def _build(self) -> bytes:
        return self._buffer

    def _set_producer_state(self, *_: Any) -> None:
        raise NotImplementedError("record batches are made for a non-idempotent producer")


Builder: TypeAlias = "BatchBuilder | RawBatch"


@dataclass(slots=True)
class Outbox:
    """Record batches per topic partition, ready to submit."""

    #: partitions per topic
    partitions: Mapping[str, int]
    batch_bytes: int = BATCH_BYTES
    batches: dict[tuple[str, int], list[Builder]] = field(default_factory=dict)
    records: int = 0

    def _builder(self, topic: str, partition: int) -> BatchBuilder:
        builders = self.batches.setdefault((topic, partition), [])
        if not builders or not isinstance(builders[-1], BatchBuilder):
            builders.append(BatchBuilder(self.batch_bytes, 0))
        return builders[-1]

    def _append(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes | None,
        headers: list[tuple[str, bytes]],
    ) -> None:
        builder = self._builder(topic, partition)
        if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
            builder = BatchBuilder(self.batch_bytes, 0)
            self.batches[(topic, partition)].append(builder)
            # a record larger than a batch still gets a batch of its own
            if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                raise ValueError(f"a record of {topic} does not fit in a record batch")
        self.records += 1

    def add(self, record: Record) -> None:
        partition = kafka_partition(record.key, self._count(record.topic))
        self._append(record.topic, partition, record.key, record.value, list(record.headers))

    def add_lines(self, lines: Lines) -> None:
        built = record_batches(
            lines.ndjson,
            lines.key_field,
            self._count(lines.topic),
            int(time.time() * 1000),
            self.batch_bytes,
            lines.tombstones,
            list(lines.headers),
        )
        for partition, batch, count in built:
            self.batches.setdefault((lines.topic, partition), []).append(RawBatch(batch, count))
            self.records += count

    def _count(self, topic: str) -> int:
        try:
            return self.partitions[topic]
        except KeyError:
            raise ValueError(f"no partition count for output topic {topic}") from None

    def close(self) -> None:
        for builders in self.batches.values():
            for builder in builders:
                builder.close()


def build(
    partitions: Mapping[str, int], records: Sequence[Record], lines: Sequence[Lines]
) -> Outbox:
    outbox = Outbox(partitions)
    for record in records:
        outbox.add(record)
    for group in lines:
        outbox.add_lines(group)
    outbox.close()
    return outbox


async def submit(producer: AIOKafkaProducer, outbox: Outbox) -> list[asyncio.Future[Any]]:
    """Hand every batch of an outbox to the producer; the futures of their delivery."""
    delivered = []
    for (topic, partition), builders in outbox.batches.items():
        for builder in builders:
            delivered.append(await producer.send_batch(builder, topic, partition=partition))
    return delivered


async def send(producer: AIOKafkaProducer, outbox: Outbox) -> None:
    """Submit every batch of an outbox, then wait until the broker has them all."""
    delivered = await submit(producer, outbox)
    if delivered:
        await asyncio.gather(*delivered)
