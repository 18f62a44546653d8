"""Reading NDJSON input: line framing, batching, and recognising a file to resume."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path


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
