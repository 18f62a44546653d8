"""Reading NDJSON input: line framing, batching, and recognising a file to resume.

``strip_line`` and ``batched`` frame an iterable of lines; ``read_chunks`` frames a byte
stream the same way in bulk (``frame`` in the compiled core does the byte work).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from crm2stream._native import frame

#: Bytes asked of the input per read: lines are framed in bulk, not one call per line,
#: and a block this size is reused from the heap and stays in cache while it is framed.
BLOCK = 1 << 20


def progress(fingerprint: str | None, offset: int) -> tuple[str, int] | None:
    """What a batch records of its input file: (fingerprint, byte offset after it)."""
    return None if fingerprint is None else (fingerprint, offset)


def strip_line(line: bytes) -> bytes:
    """Drop the line terminator (LF or CRLF) only: the rest is the original bytes. A line of
    only white space becomes empty, and empty lines are skipped."""
    if line.endswith(b"\n"):
        line = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    return line if line.strip() else b""


def batched(lines: Iterable[bytes], size: int) -> Iterator[list[bytes]]:
    """Non-empty lines in lists of ``size`` (the last may be shorter)."""
    pending: list[bytes] = []
    for line in lines:
        if line:
            pending.append(line)
            if len(pending) >= size:
                yield pending
                pending = []
    if pending:
        yield pending


def file_fingerprint(path: Path) -> str:
    """Identifies one version of one file: its real path, size and modification time."""
    stat = path.stat()
    text = f"{os.path.realpath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def read_chunks(stream: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int]]:
    """The non-empty lines of a stream (framed as ``strip_line`` frames them) in chunks of
    ``size`` lines joined by newlines (the log's own form), each as (chunk, lines, bytes
    read up to the end of its last line; all of them, for the last chunk). A pipe hands
    over what it has, so input is processed as it arrives rather than when a block fills."""
    read = getattr(stream, "read1", stream.read)
    pieces: list[bytes] = []  # framed parts of the chunk being filled
    count = 0  # lines in ``pieces``
    consumed = 0  # bytes of every line accounted for so far
    tail = b""
    while True:
        block = read(BLOCK)
        data = tail + block if tail else block
        at = 0
        while True:
            piece, lines, used = frame(data, at, size - count, not block)
            at += used
            consumed += used
            if lines:
                pieces.append(piece)
                count += lines
            if count < size:
                break
            yield b"\n".join(pieces), count, consumed
            pieces, count = [], 0
        tail = data[at:]
        if not block:
            break
    if pieces:
        yield b"\n".join(pieces), count, consumed
