"""``crm2stream replay --broker``: build the tables again, as a new application version.

The running version keeps serving: the replay reads the input topic itself (from the
beginning, or from the offsets a time gives) and writes only the new version's changelog;
nothing reaches the output topics. When it has caught up with the input's end as it was
when it started, it commits the new version's intake group there and reports the digest.
Workers started with ``CRM2STREAM_APP_VERSION`` set to the new version then carry on from
exactly that point: the changelog says how far each input partition was taken.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from crm2stream.core.config import CoreConfig
from crm2stream.core.events import DAY_US
from crm2stream.engine.results import EngineError
from crm2stream.kafka import changelog, chunks
from crm2stream.kafka.admin import admin_client, apply, bootstrap, desired, plan
from crm2stream.kafka.names import Names
from crm2stream.kafka.reader import consumer
from crm2stream.kafka.stage import TableStage
from crm2stream.settings import Settings

#: input records per batch of the replay
BATCH = 50_000


@dataclass(slots=True)
class Replayed:
    version: int
    digest: str
    events: int
    ends: dict[int, int]


def _starts(
    client: KafkaConsumer, tps: list[TopicPartition], from_ms: int | None
) -> dict[TopicPartition, int]:
    if from_ms is None:
        starts: dict[TopicPartition, int] = client.beginning_offsets(tps)
        return starts
    found = client.offsets_for_times({tp: from_ms for tp in tps})
    ends = client.end_offsets(tps)
    return {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}


def replay(settings: Settings, names: Names, version: int, from_ms: int | None) -> Replayed:
    target = names.with_version(version)
    with admin_client(settings.broker) as admin:
        if target.changelog in set(admin.list_topics()):
            raise EngineError(
                f"application version {version} exists ({target.changelog}): pick another"
            )
        apply(admin, [c for c in plan(admin, desired(target)) if c.action == "create"])
    stage = TableStage(settings.core_config(), target)
    producer = KafkaProducer(bootstrap_servers=bootstrap(settings.broker), acks="all", linger_ms=5)
    events = 0
    with consumer(settings.broker) as client:
        partitions = client.partitions_for_topic(names.input) or set()
        tps = [TopicPartition(names.input, p) for p in sorted(partitions)]
        client.assign(tps)
        ends = client.end_offsets(tps)
        starts = _starts(client, tps, from_ms)
        for tp in tps:
            client.seek(tp, starts[tp])
            stage.position.inputs[tp.partition] = starts[tp]
        pending: dict[int, list[chunks.Record]] = {}
        waiting = {tp for tp in tps if starts[tp] < ends[tp]}
        while waiting:
            for tp, records in client.poll(timeout_ms=1000, max_records=BATCH).items():
                run = pending.setdefault(tp.partition, [])
                run.extend(
                    (r.offset, r.value or b"", r.timestamp) for r in records if r.offset < ends[tp]
                )
            waiting = {tp for tp in waiting if client.position(tp) < ends[tp]}
            if sum(map(len, pending.values())) >= BATCH or not waiting:
                events += _apply(stage, pending, settings.core_config(), producer, target)
                pending = {}
    producer.flush()
    producer.close()
    group = KafkaConsumer(
        bootstrap_servers=bootstrap(settings.broker),
        group_id=target.intake_group,
        enable_auto_commit=False,
    )
    try:
        group.commit({tp: OffsetAndMetadata(ends[tp], "", -1) for tp in tps})
    finally:
        group.close()
    max_ts = stage.core.max_ts
    empty = hashlib.sha256(b"").hexdigest()
    digest = empty if max_ts is None else stage.core.digest(max_ts // DAY_US)
    return Replayed(version, digest, events, {tp.partition: ends[tp] for tp in tps})


def _apply(
    stage: TableStage,
    pending: dict[int, list[chunks.Record]],
    cfg: CoreConfig,
    producer: KafkaProducer,
    target: Names,
) -> int:
    taken = chunks.validate_partitions(pending, cfg)
    if not taken:
        return 0
    stage.take(taken)
    for frame in changelog.encode(stage.commit(publish=False).batch):
        producer.send(target.changelog, key=b"tables", value=frame, partition=0)
    return sum(len(c.offsets) + len(c.refused) for c in taken)
