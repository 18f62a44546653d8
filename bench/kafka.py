"""``make bench``, Kafka step: the distributed engine end to end on a real broker.

- Throughput: the input topic is filled first, then one ``crm2stream worker`` (pinned to
  one core) is started; events/s is the input over the time from its start until the
  table stage's changelog says every record was taken (start-up included).
- Baseline: the same measure for a minimal faust agent on the same broker, in the same
  run, doing one table update per event (``MINIMAL``).
- Latency at a steady rate: events are produced at ``--rate`` per second into a fresh
  namespace with the worker running; for each event, the time from its produce timestamp
  to the append timestamp of the first score-change record whose ``inputs`` header (where
  the input partitions stood after the batch that made it) covers the event. An event
  whose own batch changed no score counts until a later batch's change: an upper bound.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from crm2stream.kafka import changelog
from crm2stream.kafka.admin import admin_client, apply, desired, plan
from crm2stream.kafka.names import Names
from crm2stream.kafka.produce import actor_key
from tests.kafka.broker import Broker, free_port, running

MINIMAL = """
import os, faust
broker, topic, expected, app_id = ARGS  # noqa: F821 (prepended)
app = faust.App(app_id, broker=broker, key_serializer="raw", value_serializer="raw",
                consumer_auto_offset_reset="earliest", web_enabled=False, store="memory://",
                topic_disable_leader=True, topic_partitions=4)
counts = app.Table("counts", default=int, partitions=4)
seen = 0
@app.agent(app.topic(topic))
async def count(stream):
    global seen
    async for event in stream.events():
        counts[event.message.key or b"-"] += 1
        seen += 1
        if seen >= expected:
            print(seen, flush=True)
            await app.producer.flush()
            os._exit(0)
app.main()
"""


#: faust's own cost per message: an agent that only counts what ``take_events`` hands it
FAUST_FLOOR = """
import os, faust
broker, topic, expected, app_id = ARGS  # noqa: F821 (prepended)
app = faust.App(app_id, broker=broker, key_serializer="raw", value_serializer="raw",
                consumer_auto_offset_reset="earliest", web_enabled=False, store="memory://",
                topic_disable_leader=True)
seen = 0
@app.agent(app.topic(topic))
async def count(stream):
    global seen
    async for events in stream.take_events(5000, within=0.05):
        seen += len(events)
        if seen >= expected:
            os._exit(0)
app.main()
"""


@dataclass
class KafkaResult:
    worker_rate: float
    worker_seconds: float
    worker_rss_mib: float
    minimal_rate: float
    minimal_seconds: float
    faust_floor_rate: float
    latency_p50_ms: float
    latency_p99_ms: float
    latency_events: int


def _env(broker: Broker, namespace: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM2STREAM_")}
    env.update(
        CRM2STREAM_ID_KEY="bench",
        CRM2STREAM_BROKER=broker.url,
        CRM2STREAM_NAMESPACE=namespace,
    )
    return env


def _topics(broker: Broker, names: Names) -> None:
    with admin_client(broker.url) as client:
        apply(client, plan(client, desired(names)))


def _produce(broker: Broker, topic: str, lines: list[bytes]) -> None:
    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20, batch_size=1 << 20
    )
    for line in lines:
        producer.send(topic, key=actor_key(line), value=line)
    producer.flush()
    producer.close()


def _worker(broker: Broker, namespace: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "crm2stream.cli", "worker", "--port", str(free_port())],
        env=_env(broker, namespace),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: os.sched_setaffinity(0, {0}),
    )


def _changelog(broker: Broker, names: Names) -> KafkaConsumer:
    tail = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    tail.assign([TopicPartition(names.changelog, 0)])
    return tail


def _until_taken(tail: KafkaConsumer, total: int, timeout: float = 1800.0) -> None:
    reader = changelog.Reader()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for records in tail.poll(timeout_ms=200).values():
            for batch in reader.feed(r.value for r in records):
                if sum(batch.position.inputs.values()) >= total:
                    return
    raise SystemExit(f"the worker did not take {total} records within {timeout} s")


def _peak_rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def throughput(broker: Broker, lines: list[bytes], workdir: Path) -> tuple[float, float]:
    names = Names.of(f"bench{uuid.uuid4().hex[:6]}")
    _topics(broker, names)
    _produce(broker, names.input, lines)
    tail = _changelog(broker, names)
    started = time.perf_counter()
    worker = _worker(broker, names.namespace, workdir / "worker.log")
    try:
        _until_taken(tail, len(lines))
        seconds = time.perf_counter() - started
        rss = _peak_rss_mib(worker.pid)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        tail.close()
    return seconds, rss


def minimal(broker: Broker, lines: list[bytes], agent: str = MINIMAL) -> float:
    """Seconds a faust agent (the minimal one unless told) takes over the same input,
    start-up included."""
    names = Names.of(f"minimal{uuid.uuid4().hex[:6]}")
    _topics(broker, names)
    _produce(broker, names.input, lines)
    args = (broker.url, names.input, len(lines), f"{names.app_id}-minimal")
    # in a scratch directory: faust keeps its data directory in the current one
    with tempfile.TemporaryDirectory(prefix="crm2stream-bench-agent-") as scratch:
        script = Path(scratch) / "agent.py"
        script.write_text(f"ARGS = {args!r}\n{agent}")
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, str(script), "worker", "-l", "warn", "--without-web"],
            check=True,
            timeout=1800,
            cwd=scratch,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=lambda: os.sched_setaffinity(0, {0}),
        )
        return time.perf_counter() - started


def latency(
    broker: Broker, lines: list[bytes], rate: float, workdir: Path
) -> tuple[float, float, int]:
    names = Names.of(f"latency{uuid.uuid4().hex[:6]}")
    _topics(broker, names)
    worker = _worker(broker, names.namespace, workdir / "latency-worker.log")
    changes = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    topic = names.streams["score-changes"]
    changes.assign([TopicPartition(topic, p) for p in changes.partitions_for_topic(topic)])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=0)
    try:
        time.sleep(8)  # start-up and partition assignment are not what is measured
        futures = []
        started = time.perf_counter()
        for i, line in enumerate(lines):
            wait = started + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            futures.append(producer.send(names.input, key=actor_key(line), value=line))
        producer.flush()
        produced = [f.get(timeout=30) for f in futures]
        ends: dict[int, int] = {}
        for meta in produced:
            ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
        covered: list[tuple[int, dict[int, int]]] = []  # (append time ms, inputs)
        deadline = time.monotonic() + 120
        heard = time.monotonic()
        # until every event is covered, or nothing more came for a while (the last
        # events may change no score)
        while time.monotonic() < deadline and time.monotonic() - heard < 10:
            for records in changes.poll(timeout_ms=200).values():
                heard = time.monotonic()
                for record in records:
                    inputs = orjson.loads(dict(record.headers)["inputs"])
                    covered.append((record.timestamp, {int(p): o for p, o in inputs.items()}))
            latest: dict[int, int] = {}
            for _, inputs in covered:
                for p, o in inputs.items():
                    latest[p] = max(latest.get(p, 0), o)
            if all(latest.get(p, 0) >= e for p, e in ends.items()):
                break
        covered.sort(key=lambda item: item[0])
        delays = []
        for meta in produced:
            at = next(
                (ts for ts, inputs in covered if inputs.get(meta.partition, 0) > meta.offset),
                None,
            )
            if at is not None:  # the last events may change no score at all
                delays.append(at - meta.timestamp)
    finally:
        producer.close()
        changes.close()
        worker.terminate()
        worker.wait(timeout=60)
    quantiles = statistics.quantiles(delays, n=100)
    return statistics.median(delays), quantiles[98], len(delays)


def run(lines: list[bytes], latency_events: int, rate: float) -> KafkaResult:
    with tempfile.TemporaryDirectory(prefix="crm2stream-bench-kafka-") as scratch:
        workdir = Path(scratch)
        with running(workdir / "broker") as broker:
            worker_seconds, rss = throughput(broker, lines, workdir)
            minimal_seconds = minimal(broker, lines)
            floor_seconds = minimal(broker, lines, FAUST_FLOOR)
            p50, p99, count = latency(broker, lines[:latency_events], rate, workdir)
    n = len(lines)
    return KafkaResult(
        n / worker_seconds,
        worker_seconds,
        rss,
        n / minimal_seconds,
        minimal_seconds,
        n / floor_seconds,
        p50,
        p99,
        count,
    )
