"""Output records to Kafka as whole record batches, built off the event loop.

A table publication is about a dozen records per event. One producer ``send`` per record
costs a future, a Python murmur2 and a metadata check each, and that was most of a
worker's time. Here the records of a batch are grouped per topic partition into aiokafka
``BatchBuilder``s on the table stage's thread (each line's key and Kafka partition read by
the compiled helper), and the event loop only submits whole batches and awaits them.

Records of one topic partition keep their order: builders are filled and submitted in
order, and aiokafka sends a partition's batches one after the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.producer.message_accumulator import BatchBuilder

from crm2stream._native import kafka_partition, keyed_records

Headers = Sequence[tuple[str, bytes]]

#: the bytes of one record batch: under the broker's default max.message.bytes (1 MiB)
BATCH_BYTES = 512 << 10
#: how a table topic line with no value ends (canonical JSON: "value" is its last key)
TOMBSTONE = b'"value":null}'


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


@dataclass(slots=True)
class Outbox:
    """Record batches per topic partition, ready to submit."""

    #: partitions per topic
    partitions: Mapping[str, int]
    batch_bytes: int = BATCH_BYTES
    batches: dict[tuple[str, int], list[BatchBuilder]] = field(default_factory=dict)
    records: int = 0

    def _builder(self, topic: str, partition: int) -> BatchBuilder:
        builders = self.batches.setdefault((topic, partition), [])
        if not builders:
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
        headers = list(lines.headers)
        for partition, key, line in keyed_records(
            lines.ndjson, lines.key_field, self._count(lines.topic)
        ):
            if lines.tombstones and line.endswith(TOMBSTONE):
                row = orjson.loads(line)
                marks = [("at", row["at"].encode()), ("offset", str(row["offset"]).encode())]
                self._append(lines.topic, partition, key, None, marks)
            else:
                self._append(lines.topic, partition, key, line, headers)

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


async def send(producer: AIOKafkaProducer, outbox: Outbox) -> None:
    """Submit every batch of an outbox, then wait until the broker has them all."""
    delivered = []
    for (topic, partition), builders in outbox.batches.items():
        for builder in builders:
            delivered.append(await producer.send_batch(builder, topic, partition=partition))
    if delivered:
        await asyncio.gather(*delivered)
