"""`crm2stream topology show|apply` against a real broker: creates what is missing,
fixes what drifted, changes nothing the second time, and refuses what it cannot fix."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic

from crm2stream.kafka.admin import admin_client, create_missing, desired
from crm2stream.kafka.names import Names
from tests.conftest import Run
from tests.kafka.broker import Broker, running


@pytest.fixture(scope="module")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A broker of this module's own: these tests start from a cluster without topics."""
    with running(tmp_path_factory.mktemp("kafka-admin")) as broker:
        yield broker


def live(kafka: Broker) -> dict[str, tuple[int, dict[str, str]]]:
    client = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        names = [spec.name for spec in desired(Names.of())]
        present = [n for n in names if n in set(client.list_topics())]
        topics = {t["name"]: len(t["partitions"]) for t in client.describe_topics(present)}
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in present]
        configs = client.describe_configs(resources).get("topic", {}) if present else {}
        return {
            name: (topics[name], {k: v["value"] for k, v in configs.get(name, {}).items()})
            for name in present
        }
    finally:
        client.close()


def test_apply_creates_fixes_drift_and_is_idempotent(crm: Run, kafka: Broker) -> None:
    specs = desired(Names.of())
    shown = crm("topology", "show", "--broker", kafka.url)
    assert shown.returncode == 0, shown.stderr
    assert f"{len(specs)} difference(s)" in shown.stdout
    assert "drift: crm2stream.persons: missing" in shown.stdout

    applied = crm("topology", "apply", "--broker", kafka.url)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.count("create: ") == len(specs)
    assert applied.stdout.strip().endswith("in sync")
    state = live(kafka)
    for spec in specs:
        partitions, config = state[spec.name]
        assert partitions == spec.partitions
        assert {k: config[k] for k in spec.config} == spec.config
    assert state["crm2stream.persons"][1]["cleanup.policy"] == "compact"
    assert state["crm2stream.score-changes"][1]["cleanup.policy"] == "delete"

    again = crm("topology", "apply", "--broker", kafka.url)
    assert (
        again.returncode == 0 and "create:" not in again.stdout and "set-config" not in again.stdout
    )

    client = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        changed = {"cleanup.policy": "delete"}
        client.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, "crm2stream.scores", configs=changed)],
            incremental=True,
        )
    finally:
        client.close()
    drift = crm("topology", "show", "--broker", kafka.url)
    assert "drift: crm2stream.scores: cleanup.policy=delete wanted compact" in drift.stdout
    fixed = crm("topology", "apply", "--broker", kafka.url)
    assert fixed.returncode == 0 and "set-config: crm2stream.scores" in fixed.stdout
    assert live(kafka)["crm2stream.scores"][1]["cleanup.policy"] == "compact"


def test_a_topic_with_more_partitions_is_a_conflict_not_recreated(crm: Run, kafka: Broker) -> None:
    client = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        if "crm2stream.dlq" in client.list_topics():
            client.create_partitions({"crm2stream.dlq": 8})
        else:
            client.create_topics([NewTopic("crm2stream.dlq", 8, 1)])
    finally:
        client.close()
    result = crm("topology", "apply", "--broker", kafka.url)
    assert result.returncode == 2
    assert "crm2stream.dlq: 8 partitions, wanted 4" in result.stdout
    assert "apply cannot fix" in result.stderr
    assert live(kafka)["crm2stream.dlq"][0] == 8


def test_an_unreachable_broker_is_a_clear_error(crm: Run) -> None:
    result = crm("topology", "show", "--broker", "kafka://127.0.0.1:1")
    assert result.returncode == 2
    assert "cannot reach Kafka at kafka://127.0.0.1:1" in result.stderr


def test_workers_starting_together_both_create_the_missing_topics(kafka: Broker) -> None:
    """Each worker creates the topics it needs that are missing; two starting at once
    race for the same ones, and the loser must carry on, not crash."""
    names = Names.of("together")
    specs = desired(names)
    failures: list[BaseException] = []
    start = threading.Barrier(3)

    def create() -> None:
        try:
            with admin_client(kafka.url) as client:
                start.wait()
                create_missing(client, specs)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=create) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    client = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        assert {s.name for s in specs} <= set(client.list_topics())
    finally:
        client.close()
