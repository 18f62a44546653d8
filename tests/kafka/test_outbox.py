"""Output record batches, without a broker: keys, Kafka's partitions, tombstones, order."""

from __future__ import annotations

import orjson
import pytest
from aiokafka.record.default_records import DefaultRecordBatch
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2

from crm2stream._native import kafka_partition, record_batches
from crm2stream.kafka import outbox
from crm2stream.kafka.outbox import Lines, Record


def java_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner, as kafka-python implements it."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=64))
def test_partitions_are_the_ones_kafka_gives(key: bytes, partitions: int) -> None:
    assert kafka_partition(key, partitions) == java_partition(key, partitions)


def keyed(ndjson: bytes, field: str, partitions: int) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) of every record the compiled helper makes of the lines."""
    out = []
    for partition, raw, count in record_batches(ndjson, field, partitions, 0, 1 << 20, False, []):
        batch = DefaultRecordBatch(bytearray(raw))
        assert batch.validate_crc()
        records = [(partition, r.key, r.value) for r in batch]
        assert len(records) == count
        out += records
    return out


@given(st.text(max_size=20), st.dictionaries(st.sampled_from(["a", "key", "z"]), st.text()))
def test_the_key_is_the_top_level_field(key: str, nested: dict[str, str]) -> None:
    line = orjson.dumps({"a": nested, "key": key, "z": [nested]}, option=orjson.OPT_SORT_KEYS)
    [(partition, got, same)] = keyed(line, "key", 5)
    assert got == key.encode() and same == line
    assert partition == java_partition(key.encode(), 5)


def test_a_line_without_its_key_is_refused() -> None:
    with pytest.raises(ValueError, match='no "person_id"'):
        keyed(b'{"key":"a"}', "person_id", 3)
    with pytest.raises(ValueError, match="not a string"):
        keyed(b'{"person_id":3}', "person_id", 3)
    assert keyed(b"", "key", 3) == []


def records_of(
    box: outbox.Outbox,
) -> dict[tuple[str, int], list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]]]:
    out: dict[tuple[str, int], list[tuple[bytes, bytes | None, list[tuple[str, bytes]]]]] = {}
    for tp, builders in box.batches.items():
        for builder in builders:
            batch = DefaultRecordBatch(bytearray(builder._build()))
            assert batch.validate_crc()
            out.setdefault(tp, []).extend(
                (r.key, r.value, [(k, bytes(v)) for k, v in r.headers]) for r in batch
            )
    return out


def table_line(key: str, offset: int, value: object) -> bytes:
    record = {"at": "2026-11-01T00:00:00.000000Z", "key": key, "offset": offset, "value": value}
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def test_records_land_in_order_per_partition_with_tombstones() -> None:
    keys = [f"p_{i}" for i in range(40)]
    ndjson = b"\n".join(
        table_line(k, i, None if i % 7 == 0 else {"n": i}) for i, k in enumerate(keys)
    )
    dead = Record("t.dlq", b"0:5", b'{"reason":"x"}')
    box = outbox.build(
        {"t.scores": 4, "t.dlq": 2},
        [dead],
        [Lines("t.scores", "key", ndjson, tombstones=True)],
    )
    got = records_of(box)
    assert box.records == 41
    assert got[("t.dlq", java_partition(b"0:5", 2))] == [(b"0:5", b'{"reason":"x"}', [])]
    for i, key in enumerate(keys):
        mine = got[("t.scores", java_partition(key.encode(), 4))]
        [(_, value, headers)] = [r for r in mine if r[0] == key.encode()]
        if i % 7 == 0:
            assert value is None
            assert headers == [("at", b"2026-11-01T00:00:00.000000Z"), ("offset", str(i).encode())]
        else:
            assert orjson.loads(value or b"")["value"] == {"n": i} and headers == []
    for (topic, _), rows in got.items():
        if topic == "t.scores":
            offsets = [int(orjson.loads(v)["offset"]) for _, v, _ in rows if v is not None]
            assert offsets == sorted(offsets)


def test_full_batches_are_split_and_every_record_kept() -> None:
    lines = b"\n".join(
        orjson.dumps({"person_id": f"p_{i % 3}", "n": i, "pad": "x" * 200}) for i in range(500)
    )
    box = outbox.Outbox({"t.changes": 1}, batch_bytes=4096)
    box.add_lines(Lines("t.changes", "person_id", lines, [("inputs", b'{"0":500}')]))
    box.close()
    assert len(box.batches[("t.changes", 0)]) > 10
    rows = records_of(box)[("t.changes", 0)]
    assert [orjson.loads(v or b"")["n"] for _, v, _ in rows] == list(range(500))
    assert all(h == [("inputs", b'{"0":500}')] for _, _, h in rows)


def test_an_unknown_topic_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"no partition count for output topic t\.x"):
        outbox.build({}, [Record("t.x", b"k", b"v")], [])
