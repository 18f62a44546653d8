"""A worker's Prometheus metrics: the embedded engine's, plus what a stalled consumer shows.

faust consumers are known to stop fetching without a word: so besides events by type and
outcome, the dead-letter count and the batch latency, each worker reports, per partition
it holds, the records it has still to read (the partition's end seen by the consumer, less
the next offset it will process) and the seconds since it last processed an event. Lag
and age are computed when scraped, so they are never stale.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import faust
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from crm2stream.engine.metrics import EngineMetrics
from crm2stream.kafka.names import Names

if TYPE_CHECKING:
    from crm2stream.kafka.stage import Applied


class _Positions(Collector):
    def __init__(self, owner: WorkerMetrics) -> None:
        self.owner = owner

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "crm2stream_consumer_lag_records",
            "Records of each assigned partition not processed yet",
            labels=["topic", "partition"],
        )
        for (topic, partition), behind in sorted(self.owner.lag().items()):
            lag.add_metric([topic, str(partition)], behind)
        yield lag
        age = GaugeMetricFamily(
            "crm2stream_last_event_age_seconds",
            "Seconds since this worker last processed an event (-1: none yet)",
        )
        last = self.owner.last_processed
        age.add_metric([], -1.0 if last is None else time.time() - last)
        yield age


class WorkerMetrics(EngineMetrics):
    def __init__(self, app: faust.App, names: Names) -> None:
        super().__init__("Time to apply and write one batch of the table stage")
        self.app = app
        self.names = names
        self.registry.register(_Positions(self))
        #: the next offset to process, per (topic, partition) seen
        self.next_offsets: dict[tuple[str, int], int] = {}
        self.last_processed: float | None = None
        #: the consumers whose partitions have a lag: faust's, and the worker adds the
        #: intake's; each as it is now (None: closed)
        self.consumers: list[Callable[[], Any]] = [lambda: self.app.consumer]
        self.failures = Counter(
            "crm2stream_stage_failures",
            "Table-stage writes the broker did not take: a batch's outputs or a commit",
            ["write", "error"],
            registry=self.registry,
        )
        #: why the table stage cannot get its writes through, until one goes through
        self.problem: str | None = None

    def failed(self, write: str, exc: BaseException) -> None:
        """A batch's outputs or a commit failed: counted, and the worker is unhealthy."""
        self.failures.labels(write, type(exc).__name__).inc()
        self.problem = f"the {write} was not written: {type(exc).__name__}: {exc}"

    def cleared(self) -> None:
        """Nothing of this worker's is failing: a commit went through, or the table stage
        moved to another worker."""
        self.problem = None

    def seen(self, tp: Any, offset: int) -> None:
        self.next_offsets[(tp.topic, tp.partition)] = offset + 1
        self.last_processed = time.time()

    def resumed(self, tp: Any, offset: int) -> None:
        self.next_offsets[(tp.topic, tp.partition)] = offset

    def applied(self, applied: Applied, seconds: float) -> None:
        self.batch_seconds.observe(seconds)
        for (kind, outcome), count in applied.outcomes.items():
            self.events.labels(kind, outcome).inc(count)
        self.dead_letters.inc(applied.counts.rejected + applied.counts.duplicates)

    def lag(self) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for current in self.consumers:
            consumer = current()
            if consumer is None:
                continue
            for tp in consumer.assignment():
                end = consumer.highwater(tp)
                if end is None:
                    continue
                position = self.next_offsets.get((tp.topic, tp.partition))
                if position is None:  # nothing processed here yet: from the group's commit
                    position = getattr(consumer, "_committed_offset", {}).get(tp) or 0
                out[(tp.topic, tp.partition)] = max(0, end - position)
        return out

    def render(self) -> tuple[bytes, str]:
        # the exposition format's content type, less the charset aiohttp adds itself
        return generate_latest(self.registry), CONTENT_TYPE_LATEST.split(";")[0]

    def health(self) -> dict[str, Any]:
        last = self.last_processed
        return {
            "healthy": self.problem is None,
            "problem": self.problem,
            "app": self.names.app_id,
            "partitions": sorted(f"{t}:{p}" for t, p in self.lag()),
            "last_event_age_seconds": None if last is None else round(time.time() - last, 3),
        }
