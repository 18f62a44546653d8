"""The embedded engine behind an HTTP server.

One thread owns the engine: requests hand it their lines through a queue, and whatever is
queued when the thread comes round is processed as one batch (one WriteBatch, one
score-change pass), so many small requests cost about what one large one does. Each
request gets its own lines' outcomes back. When nothing arrives, the thread publishes the
table topics once they are due.

Subscribers never go through that thread: they read the topics from the store, each at its
own pace, and are woken when new records land. A slow subscriber only falls behind; it
never holds up ingest or anyone else.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from crm2stream.engine import compaction
from crm2stream.engine.embedded import EmbeddedEngine
from crm2stream.engine.host import ACCEPTED, EngineUnavailable, Outcome, Overloaded
from crm2stream.engine.results import BatchOutput
from crm2stream.engine.store import StorageError

log = logging.getLogger("crm2stream.api")


@dataclass(slots=True)
class _Submission:
    lines: list[bytes]
    originals: dict[int, bytes]
    future: asyncio.Future[list[Outcome]]


#: A stored part of a topic: the offset it starts at, and its records (offset, JSON).
_Part = tuple[int, list[tuple[int, bytes]]]
#: Parts kept per topic by the feed (see ``TopicFeed._read``).
KEPT_PARTS = 2


class TopicFeed:
    """Reads output topics and the input log from the embedded engine's store, and wakes
    waiting readers when the engine has written. Only the store (which any thread may
    read) and the engine's plain positions are touched from outside the engine's thread."""

    def __init__(self) -> None:
        self._engine: EmbeddedEngine | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._written = asyncio.Event()
        #: per topic, the records of the last stored parts reads reached, latest first
        self._parts: dict[str, list[_Part]] = {}
        self._parts_lock = threading.Lock()

    @property
    def engine(self) -> EmbeddedEngine:
        if self._engine is None:
            raise EngineUnavailable("the engine has not started")
        return self._engine

    def attach(self, engine: EmbeddedEngine, loop: asyncio.AbstractEventLoop) -> None:
        self._engine, self._loop = engine, loop
        self._parts = {}
        engine.listeners.append(self._written_threadsafe)

    def _written_threadsafe(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        self._written.set()
        self._written = asyncio.Event()

    def next_write(self) -> asyncio.Event:
        """Set at the next write: take it before reading, so no write goes unnoticed."""
        return self._written

    def topics_id(self) -> str | None:
        return self.engine.topics_id

    def end(self, topic: str) -> int:
        """The offset the next record of a topic will get (``events``: the log end)."""
        if topic == "events":
            return self.engine.log_end
        return self.engine.output_ends.get(topic, 0)

    async def read(self, topic: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to ``limit`` records (offset, JSON) of a topic from ``start``."""
        return await asyncio.to_thread(self._read, topic, start, limit)

    def _read(self, topic: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        """A stored part is one value of up to a publication's records (tens of MB for
        the relationships of a large one), and RocksDB reads a part's whole value when an
        iterator merely passes it: a reader going through a part a chunk at a time, or
        waiting at a topic's end, would read and split it again at every read. So a read
        at the end touches nothing; the records of the last parts reads reached are kept,
        ``KEPT_PARTS`` per topic (a reader catching up and others waiting need two); and
        a read the part it starts in can answer touches only that."""
        end = self.end(topic)
        if start >= end:
            return []
        for _, records in self._parts.get(topic, ()):
            if records[0][0] <= start <= records[-1][0]:
                at = bisect.bisect_left(records, start, key=itemgetter(0))
                taken = records[at : at + limit]
                if len(taken) == limit or records[-1][0] + 1 >= end:
                    return taken
        held = dict(self._parts.get(topic, ()))
        out: list[tuple[int, bytes]] = []
        last: _Part | None = None
        for first, part in self.engine.store.output_parts_from(topic, start, held):
            records = held[first] if part is None else list(compaction.records(first, part))
            last = (first, records)
            at = bisect.bisect_left(records, start, key=itemgetter(0))
            out.extend(records[at : at + limit - len(out)])
            if len(out) >= limit:
                break
        if last is not None:
            with self._parts_lock:
                others = [part for part in self._parts.get(topic, ()) if part[0] != last[0]]
                self._parts[topic] = [last, *others][:KEPT_PARTS]
        return out

    async def read_log(self, start: int, limit: int) -> tuple[int, list[bytes]]:
        """Input log lines from ``start`` (up to about ``limit``): (first position, lines)."""

        def read() -> tuple[int, list[bytes]]:
            lines: list[bytes] = []
            first = start
            held = self.engine.store.chunk_at(start)
            if held is None:
                return start, []
            chunk_start, chunk = held
            lines.extend(chunk[start - chunk_start :])
            for position, more in self.engine.store.chunks(chunk_start + len(chunk)):
                if len(lines) >= limit or position >= self.engine.log_end:
                    break
                lines.extend(more.split(b"\n"))
            return first, lines

        return await asyncio.to_thread(read)


class EngineHost:
    """Owns the engine on a thread of its own (see the module's docstring). The engine is
    opened, used and closed on that thread only: the compiled core may not change threads."""

    def __init__(
        self,
        open_engine: Callable[[], EmbeddedEngine],
        *,
        max_batch_lines: int = 50_000,
        max_queued_lines: int = 200_000,
        tick_seconds: float = 0.2,
        on_batch: Callable[[list[bytes], list[Outcome], float], None] | None = None,
    ) -> None:
        self.open_engine = open_engine
        self.feed = TopicFeed()
        self.max_batch_lines = max_batch_lines
        #: lines accepted for ingest and not yet taken by the engine: the bound keeps a
        #: burst of requests from growing the queue without limit
        self.max_queued_lines = max_queued_lines
        self._queued_lines = 0
        self._queued_lock = threading.Lock()
        self.tick_seconds = tick_seconds
        self.on_batch = on_batch
        #: why the engine stopped, when it failed
        self.failure: BaseException | None = None
        self._queue: queue.SimpleQueue[_Submission | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="crm2stream-engine", daemon=True)
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: EmbeddedEngine | None = None

    def open(self) -> None:
        """Open the engine on its thread; raises what opening it raised (a data directory
        of another currency...). Idempotent."""
        if not self._thread.is_alive() and not self._ready.is_set():
            self._thread.start()
        self._ready.wait()
        if self.failure is not None:
            raise self.failure

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the engine if not yet done, and answer requests on ``loop``."""
        self.open()
        self._loop = loop
        assert self._engine is not None
        self.feed.attach(self._engine, loop)

    def stop(self) -> None:
        """Process what is queued, publish, checkpoint and close the engine."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self.failure is None

    async def submit(
        self, lines: list[bytes], originals: dict[int, bytes] | None = None
    ) -> list[Outcome]:
        """Ingest non-empty lines; each one's outcome, in order (``originals``: see
        ``api.app.Host``)."""
        if not lines:
            return []
        if not self.running:
            raise EngineUnavailable(f"the engine is not running: {self.failure or 'stopped'}")
        with self._queued_lock:
            if self._queued_lines and self._queued_lines + len(lines) > self.max_queued_lines:
                raise Overloaded(f"{self._queued_lines} lines are waiting for the engine")
            self._queued_lines += len(lines)
        future: asyncio.Future[list[Outcome]] = asyncio.get_running_loop().create_future()
        self._queue.put(_Submission(lines, originals or {}, future))
        return await future

    def _taken(self, submission: _Submission) -> _Submission:
        with self._queued_lock:
            self._queued_lines -= len(submission.lines)
        return submission

    def _run(self) -> None:
        try:
            engine = self.open_engine()
        except BaseException as exc:
            self.failure = exc
            self._ready.set()
            return
        self._engine = engine
        self._ready.set()
        try:
            self._serve(engine)
        except BaseException as exc:
            if isinstance(exc, StorageError):
                log.error("the engine stopped: %s", exc)  # one clear line, no traceback
            else:
                log.exception("the engine stopped")
            self.failure = exc
            self._fail_queued(exc)
        finally:
            try:
                engine.close(release=True)
            except StorageError as exc:
                log.error("closing the data directory failed: %s", exc)

    def _fail_queued(self, exc: BaseException) -> None:
        unavailable = EngineUnavailable(f"the engine stopped: {exc}")
        while True:
            try:
                submission = self._queue.get_nowait()
            except queue.Empty:
                return
            if submission is not None:
                self._settle(self._taken(submission).future, unavailable)

    def _serve(self, engine: EmbeddedEngine) -> None:
        stopping = False
        while not stopping:
            try:
                first = self._queue.get(timeout=self.tick_seconds)
            except queue.Empty:
                if engine.checkpoint_due():
                    engine.checkpoint()
                continue
            if first is None:
                break
            group, size = [self._taken(first)], len(first.lines)
            while size < self.max_batch_lines:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                group.append(self._taken(more))
                size += len(more.lines)
            self._process(engine, group)
        engine.checkpoint()

    def _process(self, engine: EmbeddedEngine, group: list[_Submission]) -> None:
        lines = [line for submission in group for line in submission.lines]
        originals: dict[int, bytes] = {}
        at = 0
        for submission in group:
            originals |= {at + i: raw for i, raw in submission.originals.items()}
            at += len(submission.lines)
        started = time.perf_counter()
        try:
            out = engine.submit(b"\n".join(lines), originals=originals)
        except BaseException as exc:
            # Bad input never gets here (it is data, for the dead letters): this is the
            # store or the engine failing, and the engine stops rather than guess.
            for submission in group:
                self._settle(submission.future, EngineUnavailable(f"the engine failed: {exc}"))
            raise
        outcomes = _outcomes(len(lines), out)
        if self.on_batch is not None:
            self.on_batch(lines, outcomes, time.perf_counter() - started)
        at = 0
        for submission in group:
            self._settle(submission.future, outcomes[at : at + len(submission.lines)])
            at += len(submission.lines)
        engine.checkpoint_if_due()  # failing, it stops the engine; the batch stands answered

    def _settle(self, future: asyncio.Future[list[Outcome]], result: Any) -> None:
        def settle() -> None:
            if future.done():
                return  # the request went away
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

        assert self._loop is not None
        self._loop.call_soon_threadsafe(settle)


def _outcomes(count: int, out: BatchOutput) -> list[Outcome]:
    outcomes = [ACCEPTED] * count
    for index, rejection in out.dead:
        status = "duplicate" if rejection.reason == "duplicate" else "rejected"
        outcomes[index] = Outcome(status, rejection.reason, rejection.error)
    return outcomes
