"""``crm2stream produce``: NDJSON events onto the input topic, keyed by actor identifier.

The key is the actor's normalised ``kind:value``, so one identifier's events land on one
partition, in order. Lines are sent as they are: validating is the workers' job, and a line
that cannot be keyed (not JSON, no actor) is still sent, without a key, so that it reaches
the dead-letter topic with its reason instead of vanishing here.

Delivery is confirmed: the producer waits for every partition leader's acknowledgement
(``acks=all``, idempotent, so a retry never duplicates), and the summary counts what the
broker confirmed and what failed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from kafka import KafkaProducer
from kafka.errors import KafkaError

from crm2stream.core.events import make_identifier
from crm2stream.kafka.admin import BrokerError, bootstrap


def actor_key(line: bytes) -> bytes | None:
    """The normalised ``kind:value`` of a line's actor, or None when it has none."""
    try:
        actor = orjson.loads(line).get("actor")
        return make_identifier(actor["kind"], actor["value"]).key.encode()
    except (orjson.JSONDecodeError, AttributeError, TypeError, KeyError, ValueError):
        return None


@dataclass(slots=True)
class Delivery:
    """What the broker confirmed; updated from the producer's I/O thread."""

    produced: int = 0
    failed: int = 0
    unkeyed: int = 0
    partitions: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def done(self, metadata: Any) -> None:
        with self.lock:
            self.produced += 1
            self.partitions[metadata.partition] += 1

    def error(self, exc: BaseException) -> None:
        with self.lock:
            self.failed += 1
            self.errors[type(exc).__name__] += 1

    def summary(self, topic: str) -> dict[str, Any]:
        return {
            "topic": topic,
            "produced": self.produced,
            "failed": self.failed,
            "unkeyed": self.unkeyed,
            "partitions": {str(p): n for p, n in sorted(self.partitions.items())},
            **({"errors": dict(self.errors)} if self.errors else {}),
        }


def produce(
    broker: str, topic: str, lines: Iterable[bytes], timeout_seconds: float = 30.0
) -> Delivery:
    """Send every non-blank line; returns once the broker has answered for each one."""
    try:
        producer = KafkaProducer(
            bootstrap_servers=bootstrap(broker),
            client_id="crm2stream-produce",
            acks="all",
            enable_idempotence=True,
            linger_ms=20,
            batch_size=256 << 10,
            bootstrap_timeout_ms=int(timeout_seconds * 1000),
            request_timeout_ms=int(timeout_seconds * 1000),
            # a record is retried (idempotently) for up to four request timeouts
            delivery_timeout_ms=int(timeout_seconds * 4000) + 20,
            max_block_ms=int(timeout_seconds * 1000),
        )
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {broker}: {exc}") from exc
    delivery = Delivery()
    try:
        try:
            producer.partitions_for(topic)
        except KafkaError as exc:
            raise BrokerError(
                f"no topic {topic} at {broker} ({exc}): `crm2stream topology apply` creates it"
            ) from exc
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            key = actor_key(line)
            if key is None:
                delivery.unkeyed += 1
            future = producer.send(topic, value=line, key=key)
            future.add_callback(delivery.done)
            future.add_errback(delivery.error)
        producer.flush()
    finally:
        producer.close()
    return delivery
