"""The intake: input records in, one validated chunk per input partition per batch out.

Why not a faust agent: faust hands an agent its messages one at a time. For every message
its consumer's drain loop starts tasks and waits for them, and the stream then acks each
event, so an agent that only counts its messages tops out near 5,300 a second on one core
of the bench machine (``make bench``, "faust floor"): below what a worker must take. The
intake reads whole fetches with ``getmany`` of aiokafka (the client faust itself runs on),
in a consumer group of its own, validates them (pydantic, from bytes) and sends one chunk
per input partition per batch to the accepted topic (see ``chunks``). faust keeps the
table stage's agent, which gets one message per chunk, not per event.

Nothing lost, nothing counted twice, which the table stage's bookkeeping relies on (it
drops whatever it took from an input partition before, and must never see a gap):

- a batch's chunks are sent only once the previous batch's are confirmed by the broker;
  when they are not, the intake seeks back to where the unconfirmed batch began and sends
  from there again, so no chunk of a partition lands after a missing one;
- only confirmed offsets are committed (every ``COMMIT_SECONDS``, when partitions are
  revoked, and at the stop); whoever owns a partition next starts there, so records can
  be offered twice, never skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import TopicPartition

from crm2stream.core.config import CoreConfig
from crm2stream.engine.wake import woken
from crm2stream.kafka import chunks
from crm2stream.kafka.admin import MAX_CHUNK_MESSAGE, bootstrap
from crm2stream.kafka.names import Names

log = logging.getLogger("crm2stream.intake")

#: records per batch (validation holds the event loop: about 30 µs a record), and how
#: long a fetch waits for the first one
INTAKE_MAX, INTAKE_WITHIN = 2_000, 0.02
#: how often confirmed offsets are committed
COMMIT_SECONDS = 1.0
#: first and longest pause after a failure before the intake starts again
RETRY_FIRST, RETRY_MAX = 0.5, 10.0

#: records fetched, by partition
Fetched = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]


class Progress(Protocol):
    """Where the intake stands, for the worker's metrics."""

    def seen(self, tp: Any, offset: int) -> None:
        """The partition's records up to ``offset`` were taken."""

    def resumed(self, tp: Any, offset: int) -> None:
        """The partition was assigned: it is read from ``offset``."""


@dataclass(slots=True)
class ChunkBatch:
    """One batch's chunks, encoded, and the input offsets they cover per partition."""

    values: list[bytes] = field(default_factory=list)
    #: the first offset of each partition's records (where to seek to send them again)
    starts: dict[TopicPartition, int] = field(default_factory=dict)
    #: one past the last offset of each partition's records
    ends: dict[TopicPartition, int] = field(default_factory=dict)


def make_batch(fetched: Fetched, cfg: CoreConfig) -> ChunkBatch:
    """Validate what was fetched, partition by partition, in offset order."""
    batch = ChunkBatch()
    records: dict[int, list[chunks.Record]] = {}
    for tp, fetched_records in fetched.items():
        if fetched_records:
            records[tp.partition] = [
                (r.offset, r.value or b"", r.timestamp) for r in fetched_records
            ]
            batch.starts[tp] = fetched_records[0].offset
            batch.ends[tp] = fetched_records[-1].offset + 1
    batch.values = [chunks.encode(c) for c in chunks.validate_partitions(records, cfg)]
    return batch


@dataclass(slots=True)
class _Sent:
    batch: ChunkBatch
    delivered: list[asyncio.Future[Any]]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, intake: Intake) -> None:
        self.intake = intake

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.intake.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.intake.assigned(assigned)


class Intake:
    """The input topic's consumer and the accepted topic's producer of one worker."""

    def __init__(
        self,
        broker: str,
        names: Names,
        cfg: CoreConfig,
        progress: Progress,
    ) -> None:
        self.broker = broker
        self.names = names
        #: the contract's settings: the currency, how far ahead of its arrival an event
        #: may be dated
        self.cfg = cfg
        self.progress = progress
        self.consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._sent: _Sent | None = None
        #: where to seek back to, per partition, after a batch was not confirmed
        self._rewind: dict[TopicPartition, int] = {}
        #: the next offset confirmed per partition, and what was committed of it
        self._confirmed: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._last_commit = time.monotonic()
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="crm2stream-intake")

    async def stop(self) -> None:
        """Finish the batch at hand, commit what the broker confirmed, and close."""
        self._stopping.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        pause = RETRY_FIRST
        while not self._stopping.is_set():
            failed = False
            try:
                await self._open()
                pause = RETRY_FIRST
                while not self._stopping.is_set():
                    await self.step()
            except Exception:
                log.exception("the intake failed; starting again in %.1f s", pause)
                failed = True
            finally:
                await self._close()
            if failed:
                await woken(self._stopping, pause)  # or until the worker stops
                pause = min(RETRY_MAX, pause * 2)

    async def _open(self) -> None:
        servers = bootstrap(self.broker)
        group = self.names.intake_group
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=servers,
            group_id=group,
            client_id=f"{group}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 << 20,
        )
        self.consumer.subscribe([self.names.input], listener=_Rebalance(self))
        self._producer = AIOKafkaProducer(
            bootstrap_servers=servers,
            client_id=f"{group}-producer",
            acks="all",
            max_request_size=MAX_CHUNK_MESSAGE,
        )
        await self._producer.start()
        await self.consumer.start()

    async def _close(self) -> None:
        consumer, producer = self.consumer, self._producer
        try:
            if consumer is not None and await self._confirm():
                await self._commit(consumer)
        except Exception:
            log.warning("closing the intake without committing its last offsets", exc_info=True)
        finally:
            self.consumer = self._producer = None
            self._sent, self._rewind = None, {}
            self._confirmed, self._committed = {}, {}
            for client in (consumer, producer):
                try:
                    if client is not None:
                        await client.stop()
                except Exception:
                    log.warning("the intake's %s did not stop cleanly", client, exc_info=True)

    # -- one batch -------------------------------------------------------------------
    async def step(self) -> None:
        """Fetch, validate and send one batch (once the previous one is confirmed)."""
        consumer, producer = self.consumer, self._producer
        assert consumer is not None and producer is not None
        fetched = await consumer.getmany(
            timeout_ms=int(INTAKE_WITHIN * 1000), max_records=INTAKE_MAX
        )
        batch = make_batch(fetched, self.cfg)
        if not await self._confirm():
            self._seek_back(consumer, batch)
            return
        if batch.values:
            topic = self.names.accepted
            delivered = [await producer.send(topic, value, partition=0) for value in batch.values]
            self._sent = _Sent(batch, delivered)
            for tp, end in batch.ends.items():
                self.progress.seen(tp, end - 1)
        if time.monotonic() - self._last_commit >= COMMIT_SECONDS:
            await self._commit(consumer)

    async def _confirm(self) -> bool:
        """Wait for the last batch sent; False while a batch the broker did not take all of
        is to be read again (``_rewind`` says from where)."""
        async with self._lock:
            sent, self._sent = self._sent, None
            if sent is None:
                return not self._rewind
            results = await asyncio.gather(*sent.delivered, return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                log.warning("the accepted topic refused a batch (%r): sending it again", failed[0])
                self._rewind = dict(sent.batch.starts)
                return False
            self._confirmed.update(sent.batch.ends)
            return True

    def _seek_back(self, consumer: AIOKafkaConsumer, batch: ChunkBatch) -> None:
        """Read the unconfirmed batch's partitions (and the batch at hand's) again."""
        assigned = consumer.assignment()
        for tp, offset in {**batch.starts, **self._rewind}.items():
            if tp in assigned:
                consumer.seek(tp, offset)
        self._rewind = {}

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        self._last_commit = time.monotonic()
        assigned = consumer.assignment()
        due = {
            tp: offset
            for tp, offset in self._confirmed.items()
            if tp in assigned and self._committed.get(tp) != offset
        }
        if not due:
            return
        try:
            await consumer.commit(due)
        except Exception as exc:
            # the next commit (or the next owner, from the last commit) takes it up
            log.warning("the intake's offsets were not committed: %r", exc)
            return
        self._committed.update(due)

    # -- rebalancing -----------------------------------------------------------------
    async def revoked(self, partitions: set[TopicPartition]) -> None:
        """Hand the partitions over at what the broker confirmed."""
        consumer = self.consumer
        if consumer is None:
            return
        await self._confirm()
        await self._commit(consumer)
        for tp in partitions:
            self._confirmed.pop(tp, None)
            self._committed.pop(tp, None)
            self._rewind.pop(tp, None)

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """Forget what this worker knew of the new partitions (someone else may have moved
        them on since), and start their lag at the group's committed offset."""
        consumer = self.consumer
        if consumer is None:
            return
        ordered = sorted(partitions)
        for tp in ordered:
            self._confirmed.pop(tp, None)
            self._committed.pop(tp, None)
        committed = await asyncio.gather(*(consumer.committed(tp) for tp in ordered))
        for tp, offset in zip(ordered, committed, strict=True):
            self.progress.resumed(tp, offset or 0)
