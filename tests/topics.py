"""Reading table topics back: the latest record per key, compared with the tables."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from crm2stream.core.events import DAY_US, format_micros
from crm2stream.core.tables import STATE_TABLES
from crm2stream.engine.core import Core
from crm2stream.topology import load_topology

#: what each table topic's records are keyed by, as ``topology.yaml`` says: the
#: compaction checks below hold the publication to it
TOPICS = load_topology().tables
#: tables whose rows do not depend on the as-of day
TIMELESS = ("persons", "identity")


def compacted(records: list[dict[str, Any]], dense: bool = True) -> dict[str, tuple[str, Any]]:
    latest: dict[str, tuple[str, Any]] = {}
    previous = -1
    for offset, record in enumerate(records):
        assert record["offset"] == offset if dense else record["offset"] > previous
        previous = record["offset"]
        latest[record["key"]] = (record["at"], record["value"])
    return latest


def table_by_key(rows: Iterable[dict[str, Any]], table: str) -> dict[str, Any]:
    """A table's rows as its topic keys them: permission rows grouped by person."""
    spec = TOPICS[table]
    grouped: dict[str, Any] = {}
    for row in rows:
        key = spec.record_key(row)
        if spec.topic_key:
            grouped.setdefault(key, []).append(row)
        else:
            assert key not in grouped, (table, key)
            grouped[key] = row
    return grouped


def check_compaction(
    topics: dict[str, list[dict[str, Any]]],
    rows_of: Callable[[str], Iterable[dict[str, Any]]],
    offsets_dense: bool = True,
) -> None:
    """The latest record per key of each table topic holds exactly the keys its table has
    (as of the latest event time); its value is the table's when it was published at that
    time, or when the table does not depend on the as-of day."""
    now = max(record["at"] for records in topics.values() for record in records)
    for table in STATE_TABLES:
        latest = compacted(topics[table], offsets_dense)
        live = {key: value for key, (_, value) in latest.items() if value is not None}
        expected = table_by_key(rows_of(table), table)
        assert live.keys() == expected.keys(), table
        for key, (at, value) in latest.items():
            if value is not None and (at == now or table in TIMELESS):
                assert value == expected[key], (table, key)
            elif value is not None and table == "relationships":
                # a pair nobody touched keeps its record: only its strength has decayed since
                timeless = {**value, "strength": expected[key]["strength"]}
                assert timeless == expected[key], (table, key)


def check_core_compaction(core: Core, topics: list[list[bytes]]) -> None:
    """``check_compaction`` of a core's own records (per table, in ``STATE_TABLES`` order)."""
    assert core.max_ts is not None
    day = core.max_ts // DAY_US
    assert all(orjson.loads(r)["at"] <= format_micros(core.max_ts) for t in topics for r in t)
    records = {
        table: [orjson.loads(r) for r in t] for table, t in zip(STATE_TABLES, topics, strict=True)
    }
    check_compaction(records, lambda table: core.rows(table, day))
