"""The distributed engine as the tests drive it: real worker processes on the real broker.

``Cluster`` creates one namespace's topics (with the partitions a test asks for), starts
``crm2stream worker`` processes, produces lines the way ``crm2stream produce`` does and
waits until the table stage's changelog says every produced record was taken. It is the
``EngineUnderTest`` of the conformance suite, and the fault tests kill its processes.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import time
import urllib.request
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from crm2stream.kafka import changelog, reader
from crm2stream.kafka.admin import admin_client, apply, desired, plan
from crm2stream.kafka.names import Names
from crm2stream.kafka.produce import actor_key
from crm2stream.kafka.replay import replay
from crm2stream.settings import Settings
from tests.conftest import CLI, cli_env
from tests.kafka.broker import Broker, free_port

#: how long a test waits for the workers to take what it produced
CATCH_UP_SECONDS = 120.0


class Cluster:
    def __init__(
        self, broker: Broker, workdir: Path, partitions: int = 4, namespace: str | None = None
    ) -> None:
        """A fresh namespace whose topics are created here, or (``namespace`` given) one
        whose topics something else creates."""
        self.broker = broker
        self.workdir = workdir
        self.namespace = namespace or f"t{uuid.uuid4().hex[:10]}"
        self.names = Names.of(self.namespace)
        self.settings = Settings(
            broker=broker.url, namespace=self.namespace, id_key="test-key", _env_file=None
        )
        self.workers: list[subprocess.Popen[bytes]] = []
        self.ports: list[int] = []
        self.partitions = partitions
        #: (partition, offset) of every produced line -> its index among all produced
        self.produced: dict[tuple[int, int], int] = {}
        self.ends: dict[int, int] = {}
        specs = [
            dataclasses.replace(s, partitions=partitions) if s.role != "internal" else s
            for s in desired(self.names)
        ]
        if namespace is None:
            with admin_client(broker.url) as client:
                apply(client, plan(client, specs))
        self.producer = KafkaProducer(
            bootstrap_servers=broker.bootstrap, acks="all", linger_ms=2, api_version=(3, 9)
        )
        # from the start: with the default ("latest"), the offset is fixed at the first
        # poll, after the first produce, and a worker that wrote its changelog batch in
        # between left the tail waiting for records it had skipped
        self._tail = KafkaConsumer(
            bootstrap_servers=broker.bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._tail.assign([TopicPartition(self.names.changelog, 0)])
        self._reader = changelog.Reader()
        self.position = changelog.Position()

    # -- processes ------------------------------------------------------------------------
    def start_worker(self) -> subprocess.Popen[bytes]:
        index = len(self.workers)
        log = (self.workdir / f"worker-{index}.log").open("ab")
        env = cli_env(broker=self.broker.url, namespace=self.namespace)
        # a worker's temporary directory is left behind when a test kills it (SIGKILL):
        # under the test's directory, not the machine's /tmp
        env["TMPDIR"] = str(self.workdir)
        port = free_port()
        self.ports.append(port)
        process = subprocess.Popen(
            [*CLI, "worker", "--port", str(port), "--loglevel", "warning"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.workers.append(process)
        return process

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until the live workers hold every partition between them, once."""
        deadline = time.monotonic() + timeout
        wanted = self.partitions + 1  # the input's and the accepted topic's
        while time.monotonic() < deadline:
            held: list[str] = []
            for process, port in zip(self.workers, self.ports, strict=True):
                if process.poll() is not None:
                    continue
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                        held += orjson.loads(r.read())["partitions"]
                except OSError:
                    break
            else:
                if len(held) == wanted == len(set(held)):
                    return
            time.sleep(0.2)
        raise AssertionError(f"the workers did not share the partitions\n{self.logs()}")

    def kill(self, process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
        process.send_signal(sig)
        process.wait(timeout=60)

    def close(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.terminate()
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.producer.close()
        self._tail.close()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.workdir.glob("*.log"))

    # -- input and progress -----------------------------------------------------------------
    def produce(self, lines: list[bytes]) -> None:
        futures = [
            self.producer.send(self.names.input, key=actor_key(line), value=line) for line in lines
        ]
        self.producer.flush()
        for future in futures:
            meta = future.get(timeout=30)
            self.produced[(meta.partition, meta.offset)] = len(self.produced)
            self.ends[meta.partition] = max(self.ends.get(meta.partition, 0), meta.offset + 1)

    def latest(self) -> changelog.Position:
        for records in self._tail.poll(timeout_ms=200).values():
            for batch in self._reader.feed(r.value for r in records):
                self.position = batch.position
        return self.position

    def wait_caught_up(self, timeout: float = CATCH_UP_SECONDS) -> changelog.Position:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            inputs = self.latest().inputs
            if all(inputs.get(p, 0) >= end for p, end in self.ends.items()):
                return self.position
        raise AssertionError(
            f"the workers did not take {self.ends} within {timeout} s "
            f"(taken: {self.position.inputs})\n{self.logs()}"
        )


class KafkaEngine:
    """The conformance suite's view of a cluster."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def ingest(self, lines: list[bytes]) -> dict[str, int]:
        before = dict(self.cluster.position.totals)
        self.cluster.produce(lines)
        after = self.cluster.wait_caught_up().totals
        return {
            k: after.get(k, 0) - before.get(k, 0) for k in ("accepted", "rejected", "duplicates")
        }

    def export(self, table: str, as_of: int | None = None) -> list[dict[str, Any]]:
        rows = reader.export(self.cluster.settings, self.cluster.names, table, as_of)
        if table != self.cluster.names.topology.dlq:
            return rows
        # a dead letter names its input partition and offset; the suite expects the
        # position among everything produced (the embedded log's offset)
        out = []
        for row in rows:
            index = self.cluster.produced[(row.pop("partition"), row["offset"])]
            out.append({**row, "offset": index})
        return sorted(out, key=lambda row: int(row["offset"]))

    def digest(self, as_of: int | None = None) -> str:
        return reader.digest(self.cluster.settings, self.cluster.names, as_of)

    def replay(self) -> str:
        version = self.cluster.settings.app_version + 1
        return replay(self.cluster.settings, self.cluster.names, version, None).digest

    def topic(self, name: str) -> list[dict[str, Any]]:
        with reader.consumer(self.cluster.settings.broker) as client:
            messages = reader.read_topic(client, self.cluster.names.outputs[name])
        if name in self.cluster.names.tables:
            return reader.table_topic(messages)
        return sorted(
            (orjson.loads(m.value or b"null") for m in messages), key=lambda r: r["offset"]
        )


class Spares:
    """Clusters started ahead, one per shape: a test takes one whose workers are ready, and
    the next of its shape starts while the test runs."""

    def __init__(self, broker: Broker, root: Path) -> None:
        self.broker = broker
        self.root = root
        self.executor = ThreadPoolExecutor(2)
        self.ready: dict[tuple[int, int], Future[Cluster]] = {}

    def _start(self, partitions: int, workers: int) -> Cluster:
        workdir = self.root / uuid.uuid4().hex[:8]
        workdir.mkdir(parents=True)
        cluster = Cluster(self.broker, workdir, partitions)
        for _ in range(workers):
            cluster.start_worker()
        cluster.wait_ready()
        return cluster

    def take(self, partitions: int, workers: int) -> Cluster:
        shape = (partitions, workers)
        future = self.ready.pop(shape, None) or self.executor.submit(self._start, *shape)
        self.ready[shape] = self.executor.submit(self._start, *shape)
        return future.result()

    def close(self) -> None:
        for future in self.ready.values():
            future.result().close()
        self.executor.shutdown()
