"""A real Apache Kafka broker for the tests, without a container engine: Kafka 3.9.1 in
KRaft combined mode (one node, broker and controller) from its Maven Central jars, on
127.0.0.1 with ports the system picks.

The jars are fetched once with Maven into a cache (``CRM2STREAM_KAFKA_CACHE``, default
``~/.cache/crm2stream/kafka-3.9.1``). If anything is missing (java, mvn, the network), the
tests that need the broker fail with the reason: they are never skipped.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

VERSION = "3.9.1"
POM = Path(__file__).with_name("pom.xml")
LOG4J = """log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
"""


class BrokerError(RuntimeError):
    pass


def cache() -> Path:
    default = Path.home() / ".cache" / "crm2stream" / f"kafka-{VERSION}"
    return Path(os.environ.get("CRM2STREAM_KAFKA_CACHE", default))


def jars() -> Path:
    """The broker's jars, fetched with Maven the first time."""
    libs = cache() / "libs"
    if libs.is_dir() and any(libs.glob("kafka_2.13-*.jar")):
        return libs
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise BrokerError(f"the Kafka tests need {tool} on PATH")
    cache().mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache(), prefix="libs-"))
    fetched = subprocess.run(
        [
            "mvn",
            "-q",
            "-B",
            "-f",
            str(POM),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if fetched.returncode != 0:
        raise BrokerError(f"fetching Kafka's jars failed:\n{fetched.stdout}\n{fetched.stderr}")
    staging.replace(libs)  # whole or not at all: a half download never counts as the cache
    return libs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Broker:
    """One KRaft node. ``start`` returns once it answers an admin request."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.controller_port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "broker.log"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def _java(self, *args: str) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx1g",
            f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}",
            "-cp",
            f"{jars()}/*",
            *args,
        ]

    def start(self, timeout: float = 90.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "log4j.properties").write_text(LOG4J)
        data = self.workdir / "data"
        config = self.workdir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},"
                    f"CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={data}",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=false",
                    "",
                ]
            )
        )
        if not (data / "meta.properties").exists():
            cluster = subprocess.run(
                self._java("kafka.tools.StorageTool", "random-uuid"),
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            ).stdout.strip()
            subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster, "-c", str(config)),
                capture_output=True,
                check=True,
                timeout=120,
            )
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                self._java("kafka.Kafka", str(config)), stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise BrokerError(f"the broker exited ({self.process.returncode}):\n{self.tail()}")
            try:
                client = KafkaAdminClient(
                    bootstrap_servers=self.bootstrap, bootstrap_timeout_ms=2000
                )
            except KafkaError:
                time.sleep(0.5)
                continue
            try:
                client.list_topics()
                return
            except KafkaError:
                time.sleep(0.5)
            finally:
                client.close()
        self.stop()
        raise BrokerError(f"the broker did not answer within {timeout} s:\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


@contextmanager
def running(workdir: Path) -> Iterator[Broker]:
    """A started broker in ``workdir``, stopped on the way out."""
    broker = Broker(workdir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
