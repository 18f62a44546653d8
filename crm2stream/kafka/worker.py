"""``crm2stream worker``: the distributed engine, a faust-streaming app on Apache Kafka.

Two agents, each batching with ``take_events``:

- ``intake`` reads the input topic (keyed by actor, so scaled by its partitions across
  workers), validates every record from bytes and forwards one chunk per partition per
  batch to the accepted topic (see ``chunks``);
- ``tables`` reads the accepted topic's single partition, so exactly one worker at a time
  holds the tables (see ``stage`` for why), applies the chunks with the core, writes the
  output records, waits for the broker to confirm them, then writes the batch's
  changelog record and waits again. Only then does faust acknowledge the batch's offsets.

A worker that takes the tables over (a restart, or a rebalance after another died) first
loads them from the changelog. It does that whenever the changelog ends anywhere but
where its own last write left it, so it never applies a batch on top of a state someone
else has moved on from.

The core is not thread-safe: it lives on one thread of its own, which also does the
changelog reads, and the event loop stays free for faust's consumers and heartbeats.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import faust
from faust.web import Request, Response, View
from kafka import KafkaConsumer, TopicPartition

from crm2stream.kafka import changelog, chunks
from crm2stream.kafka.admin import MAX_CHUNK_MESSAGE, admin_client, apply, bootstrap, desired, plan
from crm2stream.kafka.metrics import WorkerMetrics
from crm2stream.kafka.names import Names
from crm2stream.kafka.reader import read_changelog
from crm2stream.kafka.stage import Applied, TableStage
from crm2stream.settings import Settings

log = logging.getLogger("crm2stream.worker")

#: records per intake batch, and how long it waits for more
INTAKE_MAX, INTAKE_WITHIN = 5_000, 0.05
#: chunks per table batch, and how long it waits for more
STAGE_MAX, STAGE_WITHIN = 64, 0.05
#: first and longest pause before a failed table batch is tried again
RETRY_FIRST, RETRY_MAX = 0.5, 10.0


class StageHost:
    """The table stage of this worker, on its own thread, and the writes of its batches."""

    def __init__(self, app: faust.App, settings: Settings, names: Names, metrics: WorkerMetrics):
        self.app = app
        self.settings = settings
        self.names = names
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="crm2stream-tables")
        self.stage: TableStage | None = None
        self._consumer: KafkaConsumer | None = None
        #: where this worker's last changelog write ended
        self.changelog_end = -1

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

    def _sync(self) -> TableStage:
        """This worker's stage, loaded again from the changelog if anyone else wrote it."""
        consumer = self._changelog_consumer()
        tp = TopicPartition(self.names.changelog, 0)
        end = consumer.end_offsets([tp])[tp]
        if self.stage is not None and end == self.changelog_end:
            return self.stage
        started = time.monotonic()
        self.stage = None
        stage = TableStage(self.settings.core_config(), self.names, self.settings.core)
        batches, end = read_changelog(consumer, self.names)
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

    def _apply(self, records: list[tuple[int, bytes]]) -> Applied | None:
        return self._sync().apply(records)

    async def handle(self, records: list[tuple[int, bytes]]) -> None:
        """Apply a batch of accepted-topic records until it is written; retry on failure
        from the changelog's state (the batch is not acknowledged before)."""
        pause = RETRY_FIRST
        while True:
            try:
                await self._handle(records)
                return
            except Exception:
                log.exception("a table batch failed; trying again in %.1f s", pause)
                self.stage = None
                await asyncio.sleep(pause)
                pause = min(RETRY_MAX, pause * 2)

    async def _handle(self, records: list[tuple[int, bytes]]) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        applied = await loop.run_in_executor(self.executor, self._apply, records)
        if applied is None:
            return
        producer = self.app.producer
        for record in applied.records:
            await producer.send(record.topic, record.key, record.value, None, None, record.headers)
        await producer.flush()
        sent = [
            await producer.send(self.names.changelog, b"tables", frame, 0, None, None)
            for frame in changelog.encode(applied.batch)
        ]
        last = None
        for future in sent:
            last = await future
        assert last is not None
        self.changelog_end = last.offset + 1
        self.metrics.applied(applied, time.monotonic() - started)

    def close(self) -> None:
        def release() -> None:
            self.stage = None
            if self._consumer is not None:
                self._consumer.close()

        self.executor.submit(release).result()
        self.executor.shutdown()


def make_app(
    settings: Settings,
    names: Names,
    datadir: Path,
    web_port: int = 6066,
    web_host: str = "127.0.0.1",
) -> faust.App:
    app = faust.App(
        names.app_id,
        datadir=str(datadir),  # faust's own files; the tables live in the changelog
        broker=f"kafka://{bootstrap(settings.broker)}",
        key_serializer="raw",
        value_serializer="raw",
        web_port=web_port,
        web_host=web_host,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=MAX_CHUNK_MESSAGE,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        web_in_thread=False,
    )
    metrics = WorkerMetrics(app, names)
    host = StageHost(app, settings, names, metrics)
    input_topic = app.topic(names.input)
    accepted = app.topic(names.accepted, partitions=1)
    currency = settings.currency

    @app.agent(input_topic, name="intake")
    async def intake(stream: faust.StreamT[bytes]) -> None:
        async for events in cast(faust.Stream[bytes], stream).take_events(
            INTAKE_MAX, within=INTAKE_WITHIN
        ):
            by_partition: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
            for event in events:
                message = event.message
                by_partition[message.partition].append((message.offset, message.value or b""))
                metrics.seen(message.tp, message.offset)
            for partition, records in sorted(by_partition.items()):
                for run in chunks.sized(records):
                    chunk = chunks.validate(partition, run, currency)
                    await accepted.send(key=str(partition).encode(), value=chunks.encode(chunk))

    @app.agent(accepted, name="tables")
    async def tables(stream: faust.StreamT[bytes]) -> None:
        async for events in cast(faust.Stream[bytes], stream).take_events(
            STAGE_MAX, within=STAGE_WITHIN
        ):
            for event in events:
                metrics.seen(event.message.tp, event.message.offset)
            await host.handle([(e.message.offset, e.message.value or b"") for e in events])

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            body, content_type = metrics.render()
            return self.bytes(body, content_type=content_type)

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return self.json(metrics.health())

    app.crm2stream_host = host  # type: ignore[attr-defined]
    return app


def run_worker(
    settings: Settings, names: Names, web_port: int, web_host: str, loglevel: str = "info"
) -> Any:
    """Run a worker until it is stopped (SIGTERM or Ctrl-C). Creates the topics it needs
    that are missing (``topology apply`` also reconfigures the existing ones)."""
    with admin_client(settings.broker) as client:
        creates = [c for c in plan(client, desired(names)) if c.action == "create"]
        apply(client, creates)
    with tempfile.TemporaryDirectory(prefix="crm2stream-worker-") as datadir:
        app = make_app(settings, names, Path(datadir), web_port, web_host)
        logging.getLogger("kafka").setLevel(logging.WARNING)  # the changelog reader's chatter
        worker = faust.Worker(app, loglevel=loglevel, quiet=True)
        try:
            return worker.execute_from_commandline()
        finally:
            app.crm2stream_host.close()  # type: ignore[attr-defined]
