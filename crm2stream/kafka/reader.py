"""Reading the distributed engine's topics back: ``export``, ``digest`` and the tests.

The state tables come from the changelog: loaded into a core, they answer ``--as-of``
any day exactly as the embedded engine does (a table topic holds each row as of the time
it was published). Change streams and dead letters come from their output topics, in the
order the table stage numbered them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from crm2stream.core.events import DAY_US
from crm2stream.core.tables import Row
from crm2stream.engine.results import EngineError
from crm2stream.kafka import changelog
from crm2stream.kafka.admin import bootstrap
from crm2stream.kafka.names import Names
from crm2stream.kafka.stage import TableStage
from crm2stream.settings import Settings


def read_changelog(
    consumer: KafkaConsumer, names: Names
) -> tuple[list[changelog.BatchRecord], int]:
    """Every whole batch of the changelog, and the offset it ends at."""
    tp = TopicPartition(names.changelog, 0)
    consumer.assign([tp])
    end: int = consumer.end_offsets([tp])[tp]
    consumer.seek_to_beginning(tp)
    reader = changelog.Reader()
    batches: list[changelog.BatchRecord] = []
    while consumer.position(tp) < end:
        for records in consumer.poll(timeout_ms=1000, max_records=500).values():
            batches.extend(reader.feed(r.value for r in records if r.offset < end))
    return batches, end


def changelog_end(consumer: KafkaConsumer, names: Names) -> int:
    """The offset the changelog ends at now."""
    tp = TopicPartition(names.changelog, 0)
    end: int = consumer.end_offsets([tp])[tp]
    return end


def read_accepted(
    consumer: KafkaConsumer, names: Names, start: int, end: int, timeout: float
) -> list[tuple[int, bytes]]:
    """The accepted topic's records in [start, end), as (offset, value), within
    ``timeout`` seconds."""
    tp = TopicPartition(names.accepted, 0)
    consumer.assign([tp])
    consumer.seek(tp, start)
    out: list[tuple[int, bytes]] = []
    deadline = time.monotonic() + timeout
    while consumer.position(tp) < end:
        if time.monotonic() > deadline:
            raise TimeoutError(f"reading accepted offsets {start} to {end} took too long")
        for records in consumer.poll(timeout_ms=1000, max_records=500).values():
            out.extend((r.offset, r.value or b"") for r in records if r.offset < end)
    return out


@dataclass(slots=True)
class Message:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


@contextmanager
def consumer(broker: str) -> Iterator[KafkaConsumer]:
    try:
        client = KafkaConsumer(
            bootstrap_servers=bootstrap(broker),
            enable_auto_commit=False,
            bootstrap_timeout_ms=10_000,
            fetch_max_bytes=64 << 20,
            max_partition_fetch_bytes=16 << 20,
        )
    except KafkaError as exc:
        raise EngineError(f"cannot reach Kafka at {broker}: {exc}") from exc
    try:
        yield client
    finally:
        client.close()


def read_topic(client: KafkaConsumer, topic: str) -> list[Message]:
    """Every record of a topic up to its end now, partition by partition."""
    partitions = client.partitions_for_topic(topic)
    if partitions is None:
        raise EngineError(f"no topic {topic}: run `crm2stream topology apply` or a worker")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    client.assign(tps)
    ends = client.end_offsets(tps)
    client.seek_to_beginning(*tps)
    out: list[Message] = []
    remaining = {tp for tp in tps if ends[tp] > 0}
    while remaining:
        for tp, records in client.poll(timeout_ms=1000, max_records=5000).items():
            out.extend(
                Message(r.partition, r.offset, r.key, r.value, dict(r.headers))
                for r in records
                if r.offset < ends[tp]
            )
        remaining = {tp for tp in remaining if client.position(tp) < ends[tp]}
    return out


def load_stage(settings: Settings, names: Names) -> TableStage:
    with consumer(settings.broker) as client:
        partitions = client.partitions_for_topic(names.changelog)
        if partitions is None:
            raise EngineError(f"no changelog {names.changelog}: no worker of this version ran")
        batches, _ = read_changelog(client, names)
    stage = TableStage(settings.core_config(), names)
    stage.restore(batches)
    return stage


def export(settings: Settings, names: Names, table: str, as_of_day: int | None) -> list[Row]:
    topology = names.topology
    if table in topology.tables:
        stage = load_stage(settings, names)
        max_ts = stage.core.max_ts
        day = as_of_day if as_of_day is not None else None if max_ts is None else max_ts // DAY_US
        return [] if day is None else list(stage.core.rows(table, day))
    if table not in names.outputs:
        raise EngineError(f"unknown table {table!r}; choose from {', '.join(names.outputs)}")
    with consumer(settings.broker) as client:
        messages = read_topic(client, names.outputs[table])
    rows = [orjson.loads(m.value) for m in messages if m.value is not None]
    if table == topology.dlq:
        return sorted(rows, key=lambda row: (row["partition"], row["offset"]))
    return sorted(rows, key=lambda row: int(row["offset"]))


def digest(settings: Settings, names: Names, as_of_day: int | None) -> str:
    stage = load_stage(settings, names)
    max_ts = stage.core.max_ts
    day = as_of_day if as_of_day is not None else None if max_ts is None else max_ts // DAY_US
    return hashlib.sha256(b"").hexdigest() if day is None else stage.core.digest(day)


def table_topic(messages: list[Message]) -> list[Row]:
    """A table topic's records as the embedded engine writes them, in publication order:
    a tombstone's ``at`` and number are in its headers."""
    rows = []
    for m in messages:
        if m.value is not None:
            rows.append(orjson.loads(m.value))
        else:
            key = (m.key or b"").decode()
            at, offset = m.headers["at"].decode(), int(m.headers["offset"])
            rows.append({"at": at, "key": key, "offset": offset, "value": None})
    return sorted(rows, key=lambda row: int(row["offset"]))
