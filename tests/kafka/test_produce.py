"""`crm2stream produce` against a real broker: every line delivered and confirmed, keyed by
the actor's normalised identifier, one identifier's events in order on one partition."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from crm2stream.kafka.admin import BrokerError
from crm2stream.kafka.produce import actor_key, produce
from crm2stream.synth import BAD_LINES
from tests.conformance import CAMPAIGN
from tests.conftest import Run
from tests.kafka.broker import Broker

TOPIC = "crm2stream.events"


def read_all(kafka: Broker) -> list[tuple[int, int, bytes | None, bytes]]:
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(TOPIC, p) for p in consumer.partitions_for_topic(TOPIC)]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        records = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for batch in consumer.poll(timeout_ms=1000).values():
                records += [(r.partition, r.offset, r.key, r.value) for r in batch]
        return records
    finally:
        consumer.close()


def test_produce_delivers_every_line_keyed_by_actor(
    crm: Run, kafka: Broker, tmp_path: Path
) -> None:
    assert crm("topology", "apply", "--broker", kafka.url).returncode == 0
    path = tmp_path / "events.ndjson"
    path.write_bytes(b"\n".join([*CAMPAIGN, b"", *BAD_LINES]) + b"\n")
    result = crm("produce", str(path), "--broker", kafka.url)
    assert result.returncode == 0, result.stderr
    summary = orjson.loads(result.stdout)
    total = len(CAMPAIGN) + len(BAD_LINES)
    assert summary["produced"] == total and summary["failed"] == 0
    assert summary["unkeyed"] == len(BAD_LINES)
    assert sum(summary["partitions"].values()) == total and len(summary["partitions"]) == 4

    mine = read_all(kafka)
    assert sorted(value for *_, value in mine) == sorted([*CAMPAIGN, *BAD_LINES])
    partition_of: dict[bytes, set[int]] = defaultdict(set)
    for partition, _, key, value in mine:
        assert key == actor_key(value)
        if key is not None:
            partition_of[key].add(partition)
    assert all(len(parts) == 1 for parts in partition_of.values())
    # one identifier's events keep the file's order
    order = {line: i for i, line in enumerate(CAMPAIGN)}
    by_key: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for _, offset, key, value in mine:
        if key is not None:
            by_key[key].append((offset, order[value]))
    assert all(
        [i for _, i in sorted(pairs)] == sorted(i for _, i in pairs) for pairs in by_key.values()
    )


def test_a_phone_written_two_ways_is_one_key() -> None:
    one = orjson.dumps({"actor": {"kind": "phone", "value": "+86 138-0000-1111"}})
    two = orjson.dumps({"actor": {"kind": "phone", "value": "+8613800001111"}})
    assert actor_key(one) == actor_key(two) == b"phone:+8613800001111"
    assert actor_key(b"{not json") is None and actor_key(b"[1]") is None


def test_a_missing_topic_is_a_clear_error(kafka: Broker) -> None:
    with pytest.raises(BrokerError, match="topology apply"):
        produce(kafka.url, "crm2stream.no-such-topic", [CAMPAIGN[0]], timeout_seconds=3)
