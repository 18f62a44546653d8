"""The embedded store: output topics kept in per-batch chunks and read by offset; log
lines read back by position."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream.engine import write
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


@settings(max_examples=50, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 9), min_size=1, max_size=6),
    asked=st.lists(st.integers(0, 60), max_size=30),
)
def test_log_lines_read_by_position_in_any_order_are_those_written(  # type: ignore[no-untyped-def]
    tmp_path_factory, sizes, asked
) -> None:
    """Batches of any size, split into pages of 3 lines: each position asked for (in any
    order, twice or past the log's end) gives its line, or None past the end."""
    written: list[bytes] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(write, "PAGE_LINES", 3)
        store = Store(tmp_path_factory.mktemp("store"))
        for size in sizes:
            lines = [b"line %d" % (len(written) + i) for i in range(size)]
            batch = store.batch()
            batch.log_chunk(len(written), b"\n".join(lines), None, {})
            store.write(batch)
            written.extend(lines)
    got = list(store.lines_at(asked))
    store.close()
    assert got == [(at, written[at] if at < len(written) else None) for at in sorted(asked)]
