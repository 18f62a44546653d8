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
- Latency baseline: the same measure for ``FAUST_HOP``, a faust agent that forwards each
  event to an output topic: what faust and the broker cost for one hop on this machine
  (the worker makes two, input to accepted topic and accepted topic to score changes).

The measured process runs pinned to one core (``WORKER_CORE``); the broker, this bench and
its producers run on the other cores.
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
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from bench.memory import status_kib
from crm2stream.kafka import changelog
from crm2stream.kafka.admin import admin_client, apply, desired, plan
from crm2stream.kafka.names import Names
from crm2stream.kafka.produce import actor_key
from tests.kafka.broker import Broker, free_port, running

#: how every reference agent makes its faust app (``ARGS`` and ``APP`` are prepended)
PREAMBLE = """
import os, faust
broker, topic, expected, app_id = ARGS  # noqa: F821 (prepended)
app = faust.App(app_id, broker=broker, key_serializer="raw", value_serializer="raw",
                consumer_auto_offset_reset="earliest", web_enabled=False, store="memory://",
                topic_disable_leader=True, **APP)  # noqa: F821 (prepended)
"""

#: the baseline: one faust table update per event, as a faust app is usually written
MINIMAL = """
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
MINIMAL_APP = {"topic_partitions": 4}

#: faust's own cost per message: an agent that only counts what ``take_events`` hands it
FAUST_FLOOR = """
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

#: faust's own latency: one hop, each event forwarded to the output topic (``expected``
#: names it here) as it comes
FAUST_HOP = """
out = app.topic(expected)
@app.agent(app.topic(topic))
async def forward(stream):
    async for events in stream.take_events(5000, within=0.01):
        for event in events:
            message = event.message
            await out.send(value=f"{message.partition}:{message.offset}".encode())
app.main()
"""
FAUST_HOP_APP = {"producer_acks": -1}

#: the core the measured process runs on; the broker and this bench run on the others
WORKER_CORE = min(os.sched_getaffinity(0))


def _pin_worker() -> None:
    os.sched_setaffinity(0, {WORKER_CORE})


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
    hop_p50_ms: float
    hop_p99_ms: float


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
        preexec_fn=_pin_worker,
    )


def _agent(
    scratch: str, args: tuple[Any, ...], agent: str, app: dict[str, Any]
) -> subprocess.Popen[bytes]:
    """Start a reference agent with its arguments and app settings, in a scratch directory
    (faust keeps its data directory in the current one)."""
    script = Path(scratch) / "agent.py"
    script.write_text(f"ARGS = {args!r}\nAPP = {app!r}\n{PREAMBLE}{agent}")
    return subprocess.Popen(
        [sys.executable, str(script), "worker", "-l", "warn", "--without-web"],
        cwd=scratch,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_pin_worker,
    )


def _changelog(broker: Broker, names: Names) -> KafkaConsumer:
    tail = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    tail.assign([TopicPartition(names.changelog, 0)])
    return tail


def _record(tail: KafkaConsumer, tp: TopicPartition, offset: int) -> bytes:
    tail.resume(tp)
    tail.seek(tp, offset)
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            for records in tail.poll(timeout_ms=200, max_records=1).values():
                if records and records[0].offset == offset:
                    return records[0].value or b""
    finally:
        tail.pause(tp)  # no fetching ahead in the background
    raise SystemExit(f"could not read changelog offset {offset}")


def _taken(tail: KafkaConsumer, tp: TopicPartition, end: int) -> int:
    """Input records the changelog's last whole batch (ending before ``end``) says were
    taken, from that batch's last and first frames only."""
    last = _record(tail, tp, end - 1)
    header = changelog.frame_header(last)
    if header["frame"] != header["frames"] - 1:
        return 0  # the last batch is being written: ask again
    first = last if header["frame"] == 0 else _record(tail, tp, end - 1 - header["frame"])
    return sum(changelog.announced(first).inputs.values())


def _until_taken(tail: KafkaConsumer, total: int, timeout: float = 1800.0) -> None:
    """Until the changelog says every input record was taken. Reads the changelog's end
    offset, and each new last batch's first and last frames: reading the whole changelog
    (each commit carries the facts it changed) with kafka-python, on the broker's core,
    fell seconds behind the worker and took the broker's CPU."""
    (tp,) = tail.assignment()
    tail.pause(tp)
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        end = tail.end_offsets([tp])[tp]
        if end > seen:
            if _taken(tail, tp, end) >= total:
                return
            seen = end
        time.sleep(0.05)
    raise SystemExit(f"the worker did not take {total} records within {timeout} s")


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
        rss = status_kib("VmHWM", worker.pid) / 1024
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        tail.close()
    return seconds, rss


def minimal(
    broker: Broker, lines: list[bytes], agent: str = MINIMAL, app: dict[str, Any] | None = None
) -> float:
    """Seconds a faust agent (the minimal one unless told) takes over the same input,
    start-up included."""
    names = Names.of(f"minimal{uuid.uuid4().hex[:6]}")
    _topics(broker, names)
    _produce(broker, names.input, lines)
    args = (broker.url, names.input, len(lines), f"{names.app_id}-minimal")
    with tempfile.TemporaryDirectory(prefix="crm2stream-bench-agent-") as scratch:
        started = time.perf_counter()
        process = _agent(scratch, args, agent, MINIMAL_APP if app is None else app)
        if process.wait(timeout=1800) != 0:
            raise SystemExit(f"the faust agent failed (exit {process.returncode})")
        return time.perf_counter() - started


def _steady(broker: Broker, topic: str, lines: list[bytes], rate: float) -> list[Any]:
    """Produce ``lines`` at ``rate`` per second; the broker's metadata of each, in order."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=0)
    try:
        futures = []
        started = time.perf_counter()
        for i, line in enumerate(lines):
            wait = started + i / rate - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
            futures.append(producer.send(topic, key=actor_key(line), value=line))
        producer.flush()
        return [f.get(timeout=30) for f in futures]
    finally:
        producer.close()


def _tail(broker: Broker, topic: str) -> KafkaConsumer:
    """A reader of every partition of ``topic`` from its start. Made once the measured
    process runs: readers made right after the topic was created sometimes read nothing
    at all in this bench (cause not established)."""
    tail = KafkaConsumer(
        bootstrap_servers=broker.bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    tail.assign([TopicPartition(topic, p) for p in tail.partitions_for_topic(topic)])
    return tail


def _quantiles(delays: list[float], what: str) -> tuple[float, float, int]:
    if len(delays) < 2:
        raise SystemExit(f"{what}: {len(delays)} events measured, too few for quantiles")
    return statistics.median(delays), statistics.quantiles(delays, n=100)[98], len(delays)


def latency(
    broker: Broker, lines: list[bytes], rate: float, workdir: Path
) -> tuple[float, float, int]:
    """p50 and p99 ms from an event's produce timestamp to the first score change that
    covers it, with a worker running."""
    names = Names.of(f"latency{uuid.uuid4().hex[:6]}")
    _topics(broker, names)
    worker = _worker(broker, names.namespace, workdir / "latency-worker.log")
    time.sleep(8)  # start-up and partition assignment are not what is measured
    changes = _tail(broker, names.streams["score-changes"])
    try:
        produced = _steady(broker, names.input, lines, rate)
        ends: dict[int, int] = {}
        for meta in produced:
            ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
        covered: list[tuple[int, dict[int, int]]] = []  # (append time ms, inputs)
        latest: dict[int, int] = {}
        deadline = time.monotonic() + 120
        heard: float | None = None
        # until every event is covered, or nothing more came for a while once something
        # came (the last events may change no score)
        while time.monotonic() < deadline and (heard is None or time.monotonic() - heard < 10):
            for records in changes.poll(timeout_ms=200).values():
                heard = time.monotonic()
                for record in records:
                    inputs = orjson.loads(dict(record.headers)["inputs"])
                    covered.append((record.timestamp, {int(p): o for p, o in inputs.items()}))
                    for p, o in covered[-1][1].items():
                        latest[p] = max(latest.get(p, 0), o)
            if all(latest.get(p, 0) >= e for p, e in ends.items()):
                break
    finally:
        changes.close()
        worker.terminate()
        worker.wait(timeout=60)
    covered.sort(key=lambda item: item[0])
    delays = []
    for meta in produced:
        at = next(
            (ts for ts, inputs in covered if inputs.get(meta.partition, 0) > meta.offset), None
        )
        if at is not None:  # the last events may change no score at all
            delays.append(at - meta.timestamp)
    return _quantiles(delays, f"score changes (worker log: {workdir / 'latency-worker.log'})")


def hop_latency(broker: Broker, lines: list[bytes], rate: float) -> tuple[float, float, int]:
    """The same measure for ``FAUST_HOP``: faust's own latency for one hop and a send."""
    names = Names.of(f"hop{uuid.uuid4().hex[:6]}")
    _topics(broker, names)
    out = f"{names.namespace}-hop"
    with admin_client(broker.url) as client:
        client.create_topics([NewTopic(out, 1, 1)])
    args = (broker.url, names.input, out, f"{names.app_id}-hop")
    with tempfile.TemporaryDirectory(prefix="crm2stream-bench-agent-") as scratch:
        agent = _agent(scratch, args, FAUST_HOP, FAUST_HOP_APP)
        time.sleep(8)
        forwarded = _tail(broker, out)
        try:
            produced = _steady(broker, names.input, lines, rate)
            appended: dict[bytes, int] = {}
            deadline = time.monotonic() + 120
            while len(appended) < len(produced) and time.monotonic() < deadline:
                for records in forwarded.poll(timeout_ms=200).values():
                    appended.update((r.value, r.timestamp) for r in records)
        finally:
            forwarded.close()
            agent.terminate()
            agent.wait(timeout=60)
    delays = [
        appended[key] - meta.timestamp
        for meta in produced
        if (key := f"{meta.partition}:{meta.offset}".encode()) in appended
    ]
    return _quantiles(delays, "faust hop")


def run(lines: list[bytes], latency_events: int, rate: float) -> KafkaResult:
    """Every Kafka step on one broker. The measured processes run on ``WORKER_CORE``; this
    bench, its producers and the broker (started from here) on the other cores."""
    cores = os.sched_getaffinity(0)
    others = cores - {WORKER_CORE}
    if others:
        os.sched_setaffinity(0, others)
    try:
        with tempfile.TemporaryDirectory(prefix="crm2stream-bench-kafka-") as scratch:
            workdir = Path(scratch)
            with running(workdir / "broker") as broker:
                worker_seconds, rss = throughput(broker, lines, workdir)
                minimal_seconds = minimal(broker, lines)
                floor_seconds = minimal(broker, lines, FAUST_FLOOR, {})
                p50, p99, count = latency(broker, lines[:latency_events], rate, workdir)
                hop_p50, hop_p99, _ = hop_latency(broker, lines[:latency_events], rate)
    finally:
        os.sched_setaffinity(0, cores)
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
        hop_p50,
        hop_p99,
    )
