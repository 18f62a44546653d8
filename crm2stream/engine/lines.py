"""Reading NDJSON input: line framing, batching, and recognising a file to resume."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

#: Bytes asked of the input per read: lines are split in bulk, not one call per line.
BLOCK = 1 << 24


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


def read_batches(stream: BinaryIO, size: int) -> Iterator[tuple[list[bytes], int]]:
    """The non-empty lines of a stream (framed as ``strip_line`` frames them) in lists of
    ``size``, each with the number of bytes read up to the end of its last line (all of
    them, for the last list). A pipe hands over what it has, so input is processed as it
    arrives rather than when a block fills."""
    read = getattr(stream, "read1", stream.read)
    pending: list[bytes] = []
    consumed = 0  # bytes of every line accounted for so far
    tail = b""
    while True:
        block = read(BLOCK)
        if block:
            data = tail + block if tail else block
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            raw = data[: cut - 1].split(b"\n") if cut else []
            lines = [line[:-1] if line.endswith(b"\r") else line for line in raw]
            newline = 1
        else:  # the end: a last line without a newline is taken as it is
            raw = lines = [tail] if tail else []
            newline = 0
        counted = 0  # lines of ``raw`` accounted for in ``consumed``
        for i in [i for i, line in enumerate(lines) if line and not line.isspace()]:
            pending.append(lines[i])
            if len(pending) == size:
                consumed += sum(map(len, raw[counted : i + 1])) + (i + 1 - counted) * newline
                counted = i + 1
                yield pending, consumed
                pending = []
        consumed += sum(map(len, raw[counted:])) + (len(raw) - counted) * newline
        if not block:
            break
    if pending:
        yield pending, consumed
