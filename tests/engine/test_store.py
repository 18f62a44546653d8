"""The embedded store's output topics: records kept in per-batch chunks, read by offset."""

from __future__ import annotations

from pathlib import Path

import orjson

from crm2stream.engine.store import Store


def test_outputs_read_from_any_offset_across_chunks(tmp_path: Path) -> None:
    store = Store(tmp_path / "db")
    offset = 0
    for size in (3, 1, 4):
        batch = store.batch()
        records = [orjson.dumps({"n": offset + i}) for i in range(size)]
        batch.outputs("changes", offset, b"\n".join(records))
        store.write(batch)
        offset += size
    other = store.batch()
    other.outputs("changer", 0, orjson.dumps({"n": -1}))  # a neighbouring topic's keys
    store.write(other)
    for start in range(offset + 2):
        assert [r["n"] for r in store.outputs("changes", start)] == list(range(start, offset))
    assert list(store.outputs("missing")) == []
    store.close()
