"""``POST /events``: a request body's events, taken batch by batch.

What a request costs is bounded by the batch, not by how many lines it holds: an NDJSON
body is framed as it streams in and handed to the engine one batch at a time, each batch
awaited before more of the body is read (the socket holds the rest back), so other
requests wait for at most about one batch of it. A JSON array is read whole (it is within
the body limit) and checked to be one array before any of it is taken; then its elements
go the same way, each judged from its own bytes exactly as the same element sent as an
NDJSON line would be. The answer counts every outcome and lists only the events that were
not accepted, the first ``MAX_LISTED`` of them: every one is in the dead letters anyway,
with its reason and original bytes (an array element that spans lines is logged on one,
its line breaks as white space, and keeps its bytes for the dead letters).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import NamedTuple

from fastapi import HTTPException, Request
from pydantic import BaseModel

from crm2stream._native import JsonArray, frame
from crm2stream.engine.host import EngineUnavailable, Outcome, Overloaded

#: Media types taken as NDJSON (and a body without any); ``application/json`` is an array.
NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/jsonlines",
        "application/x-jsonlines",
        "text/plain",
    }
)
NDJSON = "application/x-ndjson"
JSON = "application/json"
#: Events not accepted that an answer lists (the rest are counted as ``unlisted``).
MAX_LISTED = 1000
#: How long a request that is being taken waits before offering its next batch again
#: while the engine has too much queued.
RETRY_SECONDS = 0.05


class EventResult(BaseModel):
    index: int
    status: str
    reason: str | None = None
    error: str | None = None


class IngestAnswer(BaseModel):
    accepted: int
    rejected: int
    duplicates: int
    #: the events not accepted (the first ``MAX_LISTED``), by their index in the body
    results: list[EventResult]
    #: events not accepted beyond those listed
    unlisted: int = 0


def media_type(header: str | None) -> str | None:
    """The media type of a Content-Type header, lower-cased, without its parameters."""
    if header is None or not header.strip():
        return None
    return header.split(";", 1)[0].strip().lower()


class BatchLines(NamedTuple):
    """A batch of a body's events: log lines, and the original bytes of those a log line
    could not hold as they were, by index."""

    lines: list[bytes]
    originals: dict[int, bytes]


#: How a request hands a batch to the engine (``Host.submit``).
Submit = Callable[[list[bytes], dict[int, bytes]], Awaitable[list[Outcome]]]


class Tally:
    """The outcomes of a body's events so far."""

    def __init__(self) -> None:
        self.taken = 0
        self.counts = {"accepted": 0, "rejected": 0, "duplicate": 0}
        self.results: list[EventResult] = []
        self.unlisted = 0

    def add(self, outcomes: list[Outcome]) -> None:
        for index, outcome in enumerate(outcomes, self.taken):
            self.counts[outcome.status] += 1
            if outcome.status == "accepted":
                continue
            if len(self.results) < MAX_LISTED:
                self.results.append(EventResult(**outcome.as_dict(index)))
            else:
                self.unlisted += 1
        self.taken += len(outcomes)

    def answer(self) -> IngestAnswer:
        return IngestAnswer(
            accepted=self.counts["accepted"],
            rejected=self.counts["rejected"],
            duplicates=self.counts["duplicate"],
            results=self.results,
            unlisted=self.unlisted,
        )


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"the body is over the limit of {limit} bytes")


def _declared_within(request: Request, limit: int) -> None:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise too_large(limit)


class LineBatches:
    """The non-blank lines of a body that comes in pieces, in batches of ``size``, framed as
    ``engine.lines`` frames a file (the compiled ``frame``)."""

    def __init__(self, size: int) -> None:
        self.size = size
        #: the body after the last complete line, in the pieces it came in
        self.held: list[bytes] = []
        self.pending: list[bytes] = []

    def feed(self, part: bytes, last: bool = False) -> list[list[bytes]]:
        """The batches a piece of the body completes (``last``: the body ended)."""
        self.held.append(part)
        if not last and b"\n" not in part:
            return []
        data = b"".join(self.held)
        at = 0
        full: list[list[bytes]] = []
        while True:
            chunk, count, used = frame(data, at, self.size - len(self.pending), last)
            at += used
            if count:
                self.pending += chunk.split(b"\n")
            if len(self.pending) < self.size:
                break
            full.append(self.pending)
            self.pending = []
        self.held = [data[at:]] if at < len(data) else []
        if last and self.pending:
            full.append(self.pending)
            self.pending = []
        return full


async def ndjson_batches(request: Request, limit: int, size: int) -> AsyncIterator[BatchLines]:
    """The non-blank lines of an NDJSON body in batches of ``size``, as they arrive."""
    _declared_within(request, limit)
    received = 0
    lines = LineBatches(size)
    async for part in request.stream():
        received += len(part)
        if received > limit:
            raise too_large(limit)
        for batch in lines.feed(part):
            yield BatchLines(batch, {})
    for batch in lines.feed(b"", last=True):
        yield BatchLines(batch, {})


async def array_batches(request: Request, limit: int, size: int) -> AsyncIterator[BatchLines]:
    """The elements of a JSON array body, as log lines, in batches of ``size``; a 400
    before any is taken when the body is not one JSON array."""
    _declared_within(request, limit)
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise too_large(limit)
    try:
        elements = JsonArray(bytes(body))
    except ValueError as exc:
        raise HTTPException(400, f"the body is not one JSON array: {exc}") from None
    del body
    while True:
        chunk, count, originals = elements.take(size)
        if not count:
            return
        yield BatchLines(chunk.split(b"\n"), dict(originals))


def batches(request: Request, limit: int, size: int) -> AsyncIterator[BatchLines]:
    """A body's events in batches, as its media type says (a 415 for one not taken)."""
    media = media_type(request.headers.get("content-type"))
    if media == JSON:
        return array_batches(request, limit, size)
    if media is None or media in NDJSON_TYPES:
        return ndjson_batches(request, limit, size)
    raise HTTPException(
        415, f"events come as NDJSON ({', '.join(sorted(NDJSON_TYPES))}) or as {JSON} (an array)"
    )


async def take(request: Request, submit: Submit, limit: int, size: int) -> IngestAnswer:
    """Every event of a request's body, a batch at a time, and the answer."""
    tally = Tally()
    try:
        async for batch in batches(request, limit, size):
            tally.add(await _submit(submit, batch, first=tally.taken == 0))
    except EngineUnavailable as exc:
        raise HTTPException(503, f"{exc}{_progress(tally)}") from exc
    except HTTPException as exc:
        if tally.taken:
            exc.detail = f"{exc.detail}{_progress(tally)}"
        raise
    if not tally.taken:
        raise HTTPException(400, "the body holds no events")
    return tally.answer()


async def _submit(submit: Submit, batch: BatchLines, first: bool) -> list[Outcome]:
    """A batch's outcomes. Too much queued: the first batch of a request is refused (503,
    nothing taken: try later); a later one waits for room, the rest of its body held."""
    while True:
        try:
            return await submit(*batch)
        except Overloaded as exc:
            if first:
                raise HTTPException(503, f"overloaded: {exc}", {"Retry-After": "1"}) from exc
        await asyncio.sleep(RETRY_SECONDS)


def _progress(tally: Tally) -> str:
    if not tally.taken:
        return ""
    return (
        f"; the first {tally.taken} events of the body were taken (send it again: the"
        " events already accepted come back as duplicates)"
    )
