"""The table stage of a worker (``worker``), on a thread of its own, and the writes of
its batches and commits.

Latency is what a score change costs after its event: the stage thread only takes the
commit from the core; its record batches are built on another thread and written by a
producer of their own (aiokafka keeps one request in flight per connection, and a commit
is a megabyte or more every second at 1,000 events/s), so the next batch's score changes
neither wait for the building nor queue behind the writing. The intake hands on what it
has every ``INTAKE_WITHIN`` seconds and the agent every ``STAGE_WITHIN``, or as soon as
each has its maximum.

Nothing is lost between commits. The offsets faust commits for the accepted topic may run
ahead of the changelog; a worker that takes the tables over loads the last commit and
reads the accepted records from its offset up to where faust resumes it (``_gap``), and
applies them again. Their outputs are written again (at least once, as any consumer of a
Kafka topic expects); the tables count every event once.

A worker that gets the accepted partition back after a rebalance keeps its tables only if
the changelog still ends where its own last commit did; otherwise someone else moved on
and it loads them again. A commit checks the same from where its own record landed.

The core is not thread-safe: it lives on one thread of its own, which also reads the
changelog and builds each batch's records. At a commit the compiled core lets go of the
GIL while it renders the table rows and writes the checkpoint (tens of milliseconds a
second at 1,000 events/s), so the event loop keeps serving the intake and faust's
consumer meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiokafka import AIOKafkaProducer
from faust.types import TP
from kafka import KafkaConsumer

from crm2stream.kafka import changelog, outbox
from crm2stream.kafka.admin import MAX_CHUNK_MESSAGE, bootstrap
from crm2stream.kafka.metrics import WorkerMetrics
from crm2stream.kafka.names import Names
from crm2stream.kafka.reader import changelog_end, read_accepted, read_changelog
from crm2stream.kafka.stage import Applied, TableStage
from crm2stream.settings import Settings

log = logging.getLogger("crm2stream.worker")

#: first and longest pause before a failed table batch is tried again
RETRY_FIRST, RETRY_MAX = 0.5, 10.0
#: how long reading the accepted records after the last commit may take
GAP_TIMEOUT = 120.0
#: how long a stopping worker waits for its last commit, and then for its producer
STOP_SECONDS = 10.0
#: accepted-topic batches queued for the stage before the tables agent waits
QUEUED_BATCHES = 16


class StaleTables(Exception):
    """The changelog moved on without this worker: its tables are someone else's past."""


class StageHost:
    """The table stage of this worker, on its own thread, and the writes of its batches."""

    def __init__(self, settings: Settings, names: Names, metrics: WorkerMetrics):
        self.settings = settings
        self.names = names
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="crm2stream-tables")
        #: builds a commit's record batches while the stage thread applies the next ones
        self.builder = ThreadPoolExecutor(1, thread_name_prefix="crm2stream-commit-batches")
        #: accepted-topic batches the tables agent handed over, for ``_serve``
        self.queue: asyncio.Queue[list[tuple[int, bytes]]] = asyncio.Queue(QUEUED_BATCHES)
        self._serving: asyncio.Task[None] | None = None
        self._busy = False
        self._stopping = False
        self.stage: TableStage | None = None
        self._consumer: KafkaConsumer | None = None
        #: writes each batch's dead letters and score changes
        self._producer: AIOKafkaProducer | None = None
        #: writes each commit's table records and changelog record, on a connection of
        #: its own: a commit's megabyte must not queue ahead of the next score change
        self._committer: AIOKafkaProducer | None = None
        #: partitions per output topic
        self.partitions: dict[str, int] = {}
        #: where this worker's last changelog write ended
        self.changelog_end = -1
        #: set by a rebalance: check the changelog before the next batch
        self._verify = False
        #: set by a failure: load the tables again before the next batch (the core is
        #: dropped on its own thread, as it must be)
        self._discard = False
        self._last_commit = time.monotonic()
        #: the last commit's writes
        self._writing: asyncio.Task[None] | None = None
        #: one past the last accepted-topic offset handed to the stage
        self._taken = 0
        #: whether this worker holds the accepted topic's partition (the app says)
        self.owns: Callable[[], bool] = lambda: True
        #: how much longer than ``publish_seconds`` the next commit waits: it grows while
        #: commits fail (each failure loads the tables again), and is 0 once one is written
        self._backoff = 0.0

    # -- on the stage's thread -------------------------------------------------------
    def _changelog_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                bootstrap_servers=bootstrap(self.settings.broker),
                client_id=f"{self.names.app_id}-changelog-reader",
                enable_auto_commit=False,
                fetch_max_bytes=64 << 20,
                max_partition_fetch_bytes=16 << 20,
            )
        return self._consumer

    def _changelog_end(self) -> int:
        return changelog_end(self._changelog_consumer(), self.names)

    def _sync(self) -> TableStage:
        """This worker's stage, loaded again from the changelog if anyone else wrote it."""
        if self._discard:
            self.stage, self._discard = None, False
        if self.stage is not None and not self._verify:
            return self.stage
        self._verify = False
        if self.stage is not None and self._changelog_end() == self.changelog_end:
            return self.stage
        started = time.monotonic()
        self.stage = None
        stage = TableStage(self.settings.core_config(), self.names)
        batches, end = read_changelog(self._changelog_consumer(), self.names)
        stage.restore(batches)
        self.stage, self.changelog_end = stage, end
        log.info(
            "tables loaded from %d changelog batches in %.1f s: accepted offset %d, %s",
            len(batches),
            time.monotonic() - started,
            stage.position.next_offset,
            stage.position.totals,
        )
        return stage

    def _gap(self, start: int, end: int) -> list[tuple[int, bytes]]:
        """The accepted records in [start, end): applied after the last commit by a worker
        that did not commit them, acknowledged to faust all the same."""
        log.info("applying accepted offsets %d to %d again (after the last commit)", start, end)
        return read_accepted(self._changelog_consumer(), self.names, start, end, GAP_TIMEOUT)

    def _apply(
        self, records: list[tuple[int, bytes]]
    ) -> tuple[Applied | None, outbox.Outbox] | None:
        """Apply a batch (after the gap before it, if any): what it gives, to count, and
        the records of both, to send."""
        stage = self._sync()
        done: list[Applied] = []
        upto = records[0][0] if records else self._taken
        if upto > stage.position.next_offset:
            again = stage.apply(self._gap(stage.position.next_offset, upto))
            done += [again] if again is not None else []
        applied = stage.apply(records)
        done += [applied] if applied is not None else []
        if not done:
            return None
        dead = [record for a in done for record in a.records]
        box = outbox.build(self.partitions, dead, [lines for a in done for lines in a.lines])
        return applied, box

    def _commit(self) -> tuple[list[outbox.Lines], list[bytes]] | None:
        stage = self.stage
        if stage is None or self._discard or not stage.uncommitted:
            return None
        committed = stage.commit()
        return committed.lines, changelog.encode(committed.batch)

    # -- on the event loop -----------------------------------------------------------
    def _new_producer(self, role: str) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=bootstrap(self.settings.broker),
            client_id=f"{self.names.app_id}-{role}",
            acks="all",
            max_request_size=MAX_CHUNK_MESSAGE,
        )

    async def _started(self) -> tuple[AIOKafkaProducer, AIOKafkaProducer]:
        """The producers of the batches' outputs and of the commits, started."""
        if self._producer is None or self._committer is None:
            producer, committer = self._new_producer("outputs"), self._new_producer("commits")
            try:
                await producer.start()
                await committer.start()
                names = self.names
                topics = [names.dlq, *names.streams.values(), *names.tables.values()]
                for topic in topics:
                    self.partitions[topic] = len(await producer.partitions_for(topic))
            except BaseException:
                await asyncio.gather(producer.stop(), committer.stop(), return_exceptions=True)
                raise
            self._producer, self._committer = producer, committer
        return self._producer, self._committer

    async def _run(self, call: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, call, *args)

    async def _build(self, lines: list[outbox.Lines]) -> outbox.Outbox:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.builder, outbox.build, self.partitions, (), lines)

    async def offer(self, records: list[tuple[int, bytes]]) -> None:
        """Hand a batch of accepted-topic records to the stage and return: an agent that
        waits for the broker holds up faust's consumer, and the event loop it shares with
        the intake. Waits only when ``QUEUED_BATCHES`` are queued."""
        if records:
            self._taken = max(self._taken, records[-1][0] + 1)
        if self._serving is None or self._serving.done():
            self._serving = asyncio.create_task(self._serve())
            self._serving.add_done_callback(self._served)
        await self.queue.put(records)

    def _served(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # the next batch starts it again, from the changelog's state
            log.error("the table stage's task failed: %r", task.exception())
            self._discard = True

    async def _serve(self) -> None:
        """Apply what is queued (every queued batch at once), commit when due."""
        while not self._stopping:
            interval = self.settings.publish_seconds + self._backoff
            due = self._last_commit + interval - time.monotonic()
            # not asyncio.wait_for: on Python 3.11 it can swallow a cancellation (see
            # crm2stream.engine.wake)
            uncommitted = self.stage is not None and self.stage.uncommitted
            # a failure dropped the tables: while this worker holds the accepted partition
            # it loads them again and applies what it took since the last commit, not only
            # once more input comes; one that lost the partition has no failure of its own
            recovering = self._discard and self.owns()
            if self._discard and not recovering:
                self.metrics.cleared()
            try:
                async with asyncio.timeout(max(0.0, due) if uncommitted or recovering else None):
                    records = await self.queue.get()
            except TimeoutError:
                if recovering:
                    await self.handle([])
                await self.commit()
                continue
            while not self.queue.empty():
                records += self.queue.get_nowait()
            self._busy = True
            try:
                await self.handle(records)
                if time.monotonic() - self._last_commit >= interval:
                    await self.commit()
            finally:
                self._busy = False

    async def handle(self, records: list[tuple[int, bytes]]) -> None:
        """Apply accepted-topic records until their outputs are written; retry on failure
        from the changelog's state."""
        pause = RETRY_FIRST
        while True:
            try:
                await self._handle(records)
                return
            except Exception as exc:
                log.exception("a table batch failed; trying again in %.1f s", pause)
                self.metrics.failed("batch's outputs", exc)
                self._discard = True
                await asyncio.sleep(pause)
                pause = min(RETRY_MAX, pause * 2)

    async def _handle(self, records: list[tuple[int, bytes]]) -> None:
        started = time.monotonic()
        producer, _ = await self._started()
        result = await self._run(self._apply, records)
        if result is not None:
            applied, box = result
            await outbox.send(producer, box)
            if applied is not None:  # the gap's events were counted by whoever took them
                self.metrics.applied(applied, time.monotonic() - started)

    async def _commit_now(self) -> None:
        """Take a commit from the stage on its thread and write it in the background
        (record batches built on a thread of their own, the table records confirmed, then
        the changelog record) while the next batches are applied. The previous commit's
        writes finish first."""
        await self.written()
        _, producer = await self._started()
        prepared = await self._run(self._commit)
        self._last_commit = time.monotonic()
        if prepared is None:
            return
        lines, frames = prepared
        self._writing = asyncio.create_task(self._write(producer, lines, frames))
        self._writing.add_done_callback(self._written_or_failed)

    async def _write(
        self, producer: AIOKafkaProducer, lines: list[outbox.Lines], frames: list[bytes]
    ) -> None:
        await outbox.send(producer, await self._build(lines))
        framed = [
            await producer.send(self.names.changelog, frame, key=b"tables", partition=0)
            for frame in frames
        ]
        written = await asyncio.gather(*framed)
        if written[0].offset != self.changelog_end:
            # Someone else wrote the changelog since this worker's last commit. Readers keep
            # the first batch that starts at an offset and skip a later one that starts
            # there too, so the changelog holds one history whoever wrote first; this
            # worker's tables may not be it.
            raise StaleTables(
                f"the changelog moved on without this worker (it ended at "
                f"{written[0].offset}, not {self.changelog_end}): loading it again"
            )
        self.changelog_end = written[-1].offset + 1
        self._backoff = 0.0
        self.metrics.cleared()

    def _written_or_failed(self, task: asyncio.Task[None]) -> None:
        exc = task.exception() if not task.cancelled() else None
        if exc is not None:
            self._commit_failed(exc)

    def _commit_failed(self, exc: BaseException) -> None:
        """A commit the broker did not take (a record over its size limit, a broker gone)
        is never retried silently: it is counted, logged, and the worker is unhealthy until
        a commit goes through. The tables load again from the changelog, and the next
        commit waits longer each time."""
        self._backoff = min(RETRY_MAX, max(RETRY_FIRST, 2 * self._backoff))
        self.metrics.failed("commit", exc)
        log.error(
            "a commit was not written (%s: %s): the worker is unhealthy; loading the tables "
            "again, next commit in %.1f s",
            type(exc).__name__,
            exc,
            self.settings.publish_seconds + self._backoff,
        )
        self._discard = True

    async def written(self) -> None:
        """Until the last commit is written (or failed: then the tables load again)."""
        task, self._writing = self._writing, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def commit(self) -> None:
        """Commit now if there is anything to."""
        try:
            if self.stage is not None and self.stage.uncommitted:
                await self._commit_now()
        except Exception as exc:
            self._commit_failed(exc)

    def rebalanced(self, partitions: Iterable[TP]) -> None:
        """The accepted partition moved: check the changelog before trusting the tables,
        and drop the queued batches (faust hands over what follows; the stage reads what
        it missed from the accepted topic)."""
        if any(tp.topic == self.names.accepted for tp in partitions):
            self._verify = True
            while not self.queue.empty():
                self.queue.get_nowait()

    async def stop(self) -> None:
        """Commit what is applied, if the broker takes it within ``STOP_SECONDS``: a worker
        stopping with the broker gone must still stop (the next owner applies it again)."""

        async def last_commit() -> None:
            self._stopping = True
            serving = self._serving
            if serving is not None and not self._busy:
                serving.cancel()  # waiting for a batch: nothing half done
            if serving is not None:
                await asyncio.gather(serving, return_exceptions=True)
            await self.commit()
            await self.written()

        try:
            await asyncio.wait_for(last_commit(), STOP_SECONDS)
        except TimeoutError:
            log.warning("stopping without the last commit: the broker did not take it in time")
        producers = [p for p in (self._producer, self._committer) if p is not None]
        self._producer = self._committer = None
        try:
            await asyncio.wait_for(asyncio.gather(*(p.stop() for p in producers)), STOP_SECONDS)
        except TimeoutError:
            log.warning("stopping with output records the broker has not confirmed")

    def close(self) -> None:
        def release() -> None:
            self.stage = None
            if self._consumer is not None:
                self._consumer.close()

        self.executor.submit(release).result()
        self.executor.shutdown()
        self.builder.shutdown()
