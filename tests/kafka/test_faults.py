"""Faults with the real broker: a worker killed with SIGKILL mid-stream and started again,
one of two workers killed (the other takes its partitions over), the broker restarted.
Each run ends with the digest of a clean run: no event lost, none counted twice."""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from crm2stream.kafka.admin import admin_client
from crm2stream.synth import Campaign, lines
from tests import harness
from tests.api.conftest import eventually
from tests.kafka.broker import Broker, running
from tests.kafka.cluster import Cluster, KafkaEngine

EVENTS = list(lines(Campaign(identifiers=2000, events=30_000, days=60, seed=7)))
THIRD = len(EVENTS) // 3


@cache
def clean() -> str:
    return harness.digest(harness.run(EVENTS))


def wait_for_progress(cluster: Cluster, timeout: float = 120.0) -> None:
    """Until the table stage has committed some of what was produced."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(cluster.latest().inputs.values()) > 0:
            return
    raise AssertionError(f"no progress within {timeout} s\n{cluster.logs()}")


def kill_mid_stream(cluster: Cluster, worker: subprocess.Popen[bytes], more: list[bytes]) -> None:
    """Kill a worker that is working, while ``more`` is being produced: mid-stream
    whatever the speed of the stage (it may have caught up with what came before)."""
    wait_for_progress(cluster)
    producing = threading.Thread(target=cluster.produce, args=(more,))
    producing.start()
    time.sleep(0.2)
    cluster.kill(worker)
    producing.join()


def check_clean(cluster: Cluster) -> None:
    position = cluster.wait_caught_up()
    assert position.totals == {"accepted": len(EVENTS), "rejected": 0, "duplicates": 0}
    assert KafkaEngine(cluster).digest() == clean()


@pytest.fixture
def cluster(kafka: Broker, tmp_path: Path) -> Iterator[Cluster]:
    cluster = Cluster(kafka, tmp_path, partitions=4)
    yield cluster
    cluster.close()


def test_kill_9_mid_stream_and_restart(cluster: Cluster) -> None:
    worker = cluster.start_worker()
    cluster.produce(EVENTS[: THIRD // 2])
    kill_mid_stream(cluster, worker, EVENTS[THIRD // 2 : THIRD])
    cluster.produce(EVENTS[THIRD : 2 * THIRD])  # while nobody is working
    worker = cluster.start_worker()
    kill_mid_stream(cluster, worker, EVENTS[2 * THIRD :])
    cluster.start_worker()
    check_clean(cluster)


def test_kill_one_of_two_workers(cluster: Cluster) -> None:
    first, _ = cluster.start_worker(), cluster.start_worker()
    cluster.produce(EVENTS[:THIRD])
    kill_mid_stream(cluster, first, EVENTS[THIRD:])
    check_clean(cluster)


def test_broker_restart(tmp_path: Path) -> None:
    with running(tmp_path / "broker") as broker:
        cluster = Cluster(broker, tmp_path, partitions=4)
        try:
            cluster.start_worker()
            cluster.produce(EVENTS[:THIRD])
            wait_for_progress(cluster)
            broker.stop()
            time.sleep(2)
            broker.start()
            cluster.produce(EVENTS[THIRD:])
            check_clean(cluster)
        finally:
            cluster.close()


def health(port: int) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, orjson.loads(refused.read())
    except OSError:
        return 0, {}  # not listening yet


def test_a_commit_the_broker_refuses_is_an_error_never_a_silent_loop(cluster: Cluster) -> None:
    """A table record over the topic's size limit (an influencer's relationships, once)
    made the worker load its tables and fail again forever, without a word. Now the
    failure is counted, logged and makes the worker unhealthy; once the broker takes the
    records again, the worker recovers with nothing lost."""
    topic = cluster.names.tables["relationships"]

    def limit(size: str) -> None:
        with admin_client(cluster.broker.url) as client:
            resource = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": size})
            client.alter_configs([resource])

    limit("200")  # no relationships record fits
    cluster.start_worker()
    port = cluster.ports[0]
    cluster.produce(EVENTS[:THIRD])
    _, seen = eventually(lambda: ((s := health(port))[0] == 503 and s) or None, timeout=120)
    assert seen["healthy"] is False and "commit" in seen["problem"], seen
    assert "MessageSizeTooLarge" in seen["problem"], seen
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        metrics = answer.read().decode()
    assert 'crm2stream_stage_failures_total{error="MessageSizeTooLargeError",write="commit"}' in (
        metrics
    ), metrics
    assert "a commit was not written (MessageSizeTooLargeError" in cluster.logs()
    limit("1048588")  # the broker's default again
    position = cluster.wait_caught_up()
    assert position.totals == {"accepted": THIRD, "rejected": 0, "duplicates": 0}
    assert KafkaEngine(cluster).digest() == harness.digest(harness.run(EVENTS[:THIRD]))
    eventually(lambda: health(port)[0] == 200 or None, timeout=60)
