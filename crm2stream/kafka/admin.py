"""The Kafka topics of ``topology.yaml``: what they should be, how the live cluster differs,
and the changes that make it match.

Idempotent by construction: ``plan`` compares the cluster with the topology and lists only
what differs, so applying twice changes nothing the second time. Kafka cannot take
partitions away; a topic with more partitions than the topology asks for is reported, never
recreated (that would lose its records).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from crm2stream.kafka.names import Names
from crm2stream.topology import Topic

#: Single-node development clusters: the only replication factor they can take.
REPLICATION = 1


class BrokerError(Exception):
    """The cluster cannot be reached, or refused a change."""


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """A topic as the topology wants it."""

    name: str
    role: str  # input, table, stream or dead-letters
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between the cluster and the topology, and whether ``apply`` fixes it."""

    topic: str
    action: str  # create, add-partitions, set-config, or conflict (apply cannot fix it)
    detail: str
    spec: TopicSpec
    value: Any = None

    @property
    def fixable(self) -> bool:
        return self.action != "conflict"


#: the largest accepted-topic record (a chunk, see ``chunks``)
MAX_CHUNK_MESSAGE = 8 << 20
#: the workers' own topics: whole history, one partition (see ``worker``)
INTERNAL_CONFIG = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


def desired(names: Names) -> list[TopicSpec]:
    """Every topic of the topology (under the namespace), with its partitions and
    configuration, then the application version's own: accepted topic and changelog."""
    topology = names.topology
    defaults = topology.defaults

    def spec(topic: Topic, role: str, base: dict[str, str]) -> TopicSpec:
        partitions = topic.partitions or defaults.partitions
        return TopicSpec(names.topic(topic.topic), role, partitions, {**base, **topic.config})

    specs = [spec(topology.input, "input", {})]
    specs += [spec(t, "table", defaults.table_config) for t in topology.tables.values()]
    specs += [spec(t, "stream", defaults.stream_config) for t in topology.streams.values()]
    specs.append(spec(topology.dead_letter, "dead-letters", defaults.stream_config))
    # An accepted chunk carries up to a megabyte of input records, and more for one large
    # record refused (its bytes go to the dead-letter topic in base64).
    accepted = {**INTERNAL_CONFIG, "max.message.bytes": str(MAX_CHUNK_MESSAGE)}
    specs.append(TopicSpec(names.accepted, "internal", 1, accepted))
    specs.append(TopicSpec(names.changelog, "internal", 1, INTERNAL_CONFIG))
    return specs


def bootstrap(broker: str) -> str:
    """``kafka://host:port`` (or ``host:port``, or several, comma-separated) as
    bootstrap servers."""
    servers = [part.strip().removeprefix("kafka://") for part in broker.split(",")]
    if not all(servers) or any(":" not in server for server in servers):
        raise BrokerError(f"{broker!r} is not kafka://host:port")
    return ",".join(servers)


@contextmanager
def admin_client(broker: str, timeout_seconds: float = 10.0) -> Iterator[KafkaAdminClient]:
    try:
        client = KafkaAdminClient(
            bootstrap_servers=bootstrap(broker),
            client_id="crm2stream-topology",
            bootstrap_timeout_ms=int(timeout_seconds * 1000),
            request_timeout_ms=int(timeout_seconds * 1000),
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {broker}: {exc}") from exc
    try:
        yield client
    finally:
        client.close()


def plan(client: KafkaAdminClient, specs: Sequence[TopicSpec]) -> list[Change]:
    """What differs between the cluster and the specs, topic by topic, in spec order."""
    live = set(client.list_topics())
    present = [spec for spec in specs if spec.name in live]
    partitions = (
        {
            topic["name"]: len(topic["partitions"])
            for topic in client.describe_topics([spec.name for spec in present])
        }
        if present
        else {}
    )
    configs: dict[str, dict[str, Any]] = {}
    if present:
        resources = [ConfigResource(ConfigResourceType.TOPIC, spec.name) for spec in present]
        described = client.describe_configs(resources, config_filter="all")
        configs = described.get("topic", {})
    changes: list[Change] = []
    for spec in specs:
        if spec.name not in live:
            changes.append(Change(spec.name, "create", f"missing: {_describe(spec)}", spec))
            continue
        have = partitions[spec.name]
        if have < spec.partitions:
            detail = f"{have} partitions, wanted {spec.partitions}"
            changes.append(Change(spec.name, "add-partitions", detail, spec, spec.partitions))
        elif have > spec.partitions:
            detail = f"{have} partitions, wanted {spec.partitions}: Kafka cannot remove partitions"
            changes.append(Change(spec.name, "conflict", detail, spec))
        current = configs.get(spec.name, {})
        for key, wanted in sorted(spec.config.items()):
            value = current.get(key, {}).get("value")
            if value != wanted:
                detail = f"{key}={value} wanted {wanted}"
                changes.append(Change(spec.name, "set-config", detail, spec, (key, wanted)))
    return changes


def apply(client: KafkaAdminClient, changes: Sequence[Change]) -> None:
    """Make the fixable changes: create topics, add partitions, set configuration."""
    try:
        creates = [c.spec for c in changes if c.action == "create"]
        if creates:
            client.create_topics(
                [
                    NewTopic(s.name, s.partitions, REPLICATION, topic_configs=s.config)
                    for s in creates
                ],
                wait_for_metadata=True,  # usable when this returns (see create_missing)
            )
        grow = {c.topic: c.value for c in changes if c.action == "add-partitions"}
        if grow:
            client.create_partitions(grow)
        settings: dict[str, dict[str, str]] = {}
        for change in changes:
            if change.action == "set-config":
                key, value = change.value
                settings.setdefault(change.topic, {})[key] = value
        if settings:
            resources = [
                ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)
                for topic, configs in settings.items()
            ]
            client.alter_configs(resources, incremental=True)
    except KafkaError as exc:
        raise BrokerError(f"Kafka refused a change: {exc}") from exc


def create_missing(
    client: KafkaAdminClient, specs: Sequence[TopicSpec], timeout_s: float = 30.0
) -> None:
    """Create the topics that do not exist yet, one by one: one that someone else creates
    meanwhile (two workers starting together) is as good as created here. Returns when
    every topic it found missing has a leader for each partition: the broker answers a
    creation before its metadata shows the topic (KRaft propagates it afterwards), and a
    worker that subscribed in between would start without it."""
    created = []
    for change in plan(client, specs):
        if change.action != "create":
            continue
        created.append(change.topic)
        try:
            apply(client, [change])
        except BrokerError as exc:
            if not isinstance(exc.__cause__, TopicAlreadyExistsError):
                raise
    try:
        client.wait_for_topics(created, timeout_ms=int(timeout_s * 1000))
    except KafkaError as exc:
        raise BrokerError(f"topics created but not ready after {timeout_s:g} s: {exc}") from exc


def _describe(spec: TopicSpec) -> str:
    config = ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
    return f"{spec.partitions} partitions, {config or 'broker defaults'}"
