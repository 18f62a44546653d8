"""``crm2stream serve --broker``: the HTTP API and dashboard over Kafka topics.

The API is a subscriber (see ``api.app``): it needs a feed of the output topics and the
input, and somewhere to send new events. Here the feed is a consumer of every output
topic and of the input topic (no consumer group: each API process reads everything), and
``POST /events`` produces to the input topic for the workers.

A topic of the API is one sequence; a Kafka topic is several partitions. The feed numbers
records in the order it receives them, per topic. Records of one key share a partition,
so their order holds, and that is all a table's latest-value-per-key needs. A record
written twice (a worker that took over re-sends what its predecessor sent after the last
commit) is simply applied twice.

The feed keeps the last ``keep`` records of each topic for streams that resume from an
offset; the read model reads every record as it comes.

An event's answer from ``POST /events`` is the intake's verdict (the same validation):
"rejected" with the reason, or "accepted" for processing. Whether it is a duplicate only
the table stage knows, later: duplicates are dead letters, like every rejected event,
which is produced all the same so that the dead-letter topic keeps its original bytes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from crm2stream.core.config import CoreConfig
from crm2stream.core.events import timestamp_micros
from crm2stream.core.validation import Rejection, decode, too_far_ahead
from crm2stream.engine.host import ACCEPTED, EngineUnavailable, Outcome
from crm2stream.kafka.admin import MAX_CHUNK_MESSAGE, bootstrap
from crm2stream.kafka.names import Names
from crm2stream.kafka.produce import actor_key

log = logging.getLogger("crm2stream.api")

#: records kept per topic for streams that resume from an offset
KEEP = 100_000


def _record(key: bytes | None, value: bytes | None, headers: Any) -> bytes:
    """A record's JSON: its value, or for a table topic's tombstone the record the
    embedded engine writes (key, ``at`` and ``offset`` from the headers, value null)."""
    if value is not None:
        return value
    marks = {name: bytes(data).decode() for name, data in headers or ()}
    return orjson.dumps(
        {
            "at": marks.get("at"),
            "key": (key or b"").decode(),
            "offset": int(marks.get("offset", -1)),
            "value": None,
        },
        option=orjson.OPT_SORT_KEYS,
    )


class KafkaFeed:
    """The API's view of the Kafka topics (see the module's docstring)."""

    def __init__(self, broker: str, names: Names, keep: int = KEEP) -> None:
        self.broker = broker
        self.names = names
        self.keep = keep
        #: Kafka topic -> the API's name for it ("events": the input)
        self.topics = {names.input: "events", names.dlq: "dlq"}
        self.topics |= {topic: name for name, topic in names.tables.items()}
        self.topics |= {topic: name for name, topic in names.streams.items()}
        self._records: dict[str, deque[bytes]] = {
            name: deque(maxlen=keep) for name in self.topics.values()
        }
        self._ends: dict[str, int] = dict.fromkeys(self.topics.values(), 0)
        self._written = asyncio.Event()

    def next_write(self) -> asyncio.Event:
        """Set at the next record received: take it before reading."""
        return self._written

    def _wake(self) -> None:
        self._written.set()
        self._written = asyncio.Event()

    def topics_id(self) -> str | None:
        """None: this feed numbers records as it receives them, from 0 at every start."""
        return None

    def end(self, topic: str) -> int:
        return self._ends.get(topic, 0)

    def _slice(self, topic: str, start: int, limit: int) -> tuple[int, list[bytes]]:
        records = self._records[topic]
        base = self._ends[topic] - len(records)
        first = max(start, base)
        if first > start:
            log.warning("%s: offsets %d to %d are no longer kept", topic, start, first - 1)
        count = max(0, min(limit, self._ends[topic] - first))
        return first, [records[i] for i in range(first - base, first - base + count)]

    async def read(self, topic: str, start: int, limit: int) -> list[tuple[int, bytes]]:
        first, records = self._slice(topic, start, limit)
        return list(enumerate(records, first))

    async def read_log(self, start: int, limit: int) -> tuple[int, list[bytes]]:
        return self._slice("events", start, limit)

    async def run(self) -> None:
        """Consume every topic from its beginning until cancelled."""
        consumer = AIOKafkaConsumer(
            *self.topics,
            bootstrap_servers=bootstrap(self.broker),
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 << 20,
        )
        await consumer.start()
        try:
            while True:
                fetched = await consumer.getmany(timeout_ms=1000, max_records=10_000)
                for tp, messages in fetched.items():
                    name = self.topics[tp.topic]
                    records = self._records[name]
                    for m in messages:
                        records.append(_record(m.key, m.value, m.headers))
                    self._ends[name] += len(messages)
                if fetched:
                    self._wake()
        finally:
            await consumer.stop()


class KafkaHost:
    """What the API's routes need of an engine, over Kafka: a feed of the topics and a
    way in for new events (see ``api.hub.EngineHost`` for the embedded one)."""

    def __init__(self, broker: str, names: Names, cfg: CoreConfig) -> None:
        self.broker = broker
        self.names = names
        self.cfg = cfg
        self.feed = KafkaFeed(broker, names)
        #: not called: the workers count events, and the API would count them twice
        self.on_batch: Callable[[list[bytes], list[Outcome], float], None] | None = None
        self.failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._producer: AIOKafkaProducer | None = None
        self._following: asyncio.Task[None] | None = None

    def open(self) -> None:
        """Nothing to open before the event loop runs (the clients start with it)."""

    def _call(self, work: Callable[[], Coroutine[Any, Any, None]], timeout: float = 60.0) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(work(), self._loop).result(timeout)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Connect and start following the topics (called off the loop, as the embedded
        host is); raises when the broker cannot be reached."""
        self._loop = loop
        self._call(self._start)

    async def _start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap(self.broker),
            client_id="crm2stream-api",
            acks="all",
            linger_ms=5,
            max_request_size=MAX_CHUNK_MESSAGE,
        )
        try:
            await producer.start()
        except KafkaError as exc:
            self.failure = exc
            raise EngineUnavailable(f"cannot reach Kafka at {self.broker}: {exc}") from exc
        self._producer = producer
        self._following = asyncio.create_task(self.feed.run())
        self._following.add_done_callback(self._stopped)

    def _stopped(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()
            log.error("following the topics failed: %s", self.failure)

    def stop(self) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._call(self._stop)

    async def _stop(self) -> None:
        if self._following is not None:
            self._following.cancel()
            await asyncio.gather(self._following, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def running(self) -> bool:
        following = self._following is not None and not self._following.done()
        return self._producer is not None and following and self.failure is None

    async def submit(
        self, lines: list[bytes], originals: dict[int, bytes] | None = None
    ) -> list[Outcome]:
        """Produce events to the input topic (keyed by actor) and wait for the broker;
        each one's verdict from the intake's validation."""
        if self._producer is None or not self.running:
            raise EngineUnavailable(f"not connected to Kafka: {self.failure or 'stopped'}")
        outcomes: list[Outcome] = []
        delivered = []
        try:
            # the intake judges each event's time against the broker's append time; now is
            # what that will be, give or take the broker's clock
            arrival = time.time_ns() // 1000
            for index, line in enumerate(lines):
                verdict = decode(line, self.cfg.currency)
                if not isinstance(verdict, Rejection):
                    occurred = timestamp_micros(verdict.occurred_at)
                    tolerance = self.cfg.future_tolerance_seconds
                    verdict = too_far_ahead(occurred, arrival, tolerance) or verdict
                if isinstance(verdict, Rejection):
                    outcomes.append(Outcome("rejected", verdict.reason, verdict.error))
                else:
                    outcomes.append(ACCEPTED)
                delivered.append(
                    # a record may span lines: the intake takes the bytes as they were sent
                    await self._producer.send(
                        self.names.input, (originals or {}).get(index, line), key=actor_key(line)
                    )
                )
            await asyncio.gather(*delivered)
        except KafkaError as exc:
            raise EngineUnavailable(f"Kafka did not take the events: {exc}") from exc
        return outcomes
