"""Input framing: reading in blocks gives exactly the lines and resume offsets of reading
line by line, wherever the blocks happen to cut, and chunks that are the lines joined."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm2stream.engine import lines as framing
from crm2stream.engine.lines import read_chunks, strip_line


def line_by_line(data: bytes, size: int) -> list[tuple[list[bytes], int]]:
    """The reference framing: one line at a time."""
    out: list[tuple[list[bytes], int]] = []
    pending: list[bytes] = []
    offset = 0
    for raw in io.BytesIO(data):
        offset += len(raw)
        line = strip_line(raw)
        if line:
            pending.append(line)
        if len(pending) == size:
            out.append((pending, offset))
            pending = []
    if pending:
        out.append((pending, offset))
    return out


pieces = st.sampled_from(
    [b"{}", b'{"a":1}', b"x", b" ", b"\t", b"\x0c", b"\r", b"\n", b"\r\n", b"\n\n"]
)


@given(parts=st.lists(pieces, max_size=60), size=st.integers(1, 4), block=st.integers(1, 9))
def test_block_reads_frame_like_line_reads(parts: list[bytes], size: int, block: int) -> None:
    data = b"".join(parts)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(framing, "BLOCK", block)
        chunks = list(read_chunks(io.BytesIO(data), size))
    assert all(count == len(chunk.split(b"\n")) for chunk, count, _ in chunks)
    got = [(chunk.split(b"\n"), consumed) for chunk, _, consumed in chunks]
    assert got == line_by_line(data, size)
