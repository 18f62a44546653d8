"""Prometheus metrics of the server: what the engine did, and how far each subscriber is.

Counters and the latency histogram are updated as batches are processed; positions, topic
ends and table sizes are read at scrape time, so they are never stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from crm2stream.core.validation import declared_type
from crm2stream.engine.host import Outcome
from crm2stream.engine.metrics import EngineMetrics


class Positions(Collector):
    """Gauges read when scraped."""

    def __init__(
        self,
        topic_ends: Callable[[], dict[str, int]],
        subscribers: Callable[[], dict[str, dict[str, int]]],
        table_rows: Callable[[], dict[str, int]],
    ) -> None:
        self.topic_ends = topic_ends
        self.subscribers = subscribers
        self.table_rows = table_rows

    def collect(self) -> Iterator[Metric]:
        ends = self.topic_ends()
        end = GaugeMetricFamily(
            "crm2stream_topic_end_offset",
            "Offset the next record of each topic will get (events: the input log end)",
            labels=["topic"],
        )
        for topic, value in sorted(ends.items()):
            end.add_metric([topic], value)
        yield end
        position = GaugeMetricFamily(
            "crm2stream_subscriber_position_offset",
            "Next offset each subscriber will read, per topic",
            labels=["subscriber", "topic"],
        )
        lag = GaugeMetricFamily(
            "crm2stream_subscriber_lag_records",
            "Records a subscriber has still to read, per topic",
            labels=["subscriber", "topic"],
        )
        for name, positions in sorted(self.subscribers().items()):
            for topic, value in sorted(positions.items()):
                position.add_metric([name, topic], value)
                lag.add_metric([name, topic], max(0, ends.get(topic, 0) - value))
        yield position
        yield lag
        rows = GaugeMetricFamily(
            "crm2stream_table_rows", "Keys in each table of the read model", labels=["table"]
        )
        for table, value in sorted(self.table_rows().items()):
            rows.add_metric([table], value)
        yield rows


class Metrics(EngineMetrics):
    def __init__(self) -> None:
        super().__init__("Time to validate, apply and write one batch of input lines")

    def batch(self, lines: list[bytes], outcomes: list[Outcome], seconds: float) -> None:
        self.batch_seconds.observe(seconds)
        for line, outcome in zip(lines, outcomes, strict=True):
            self.events.labels(declared_type(line), outcome.status).inc()
            if outcome.status != "accepted":
                self.dead_letters.inc()
