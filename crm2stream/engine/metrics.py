"""The metrics every engine reports, under the same names: events by declared type and
outcome, dead letters, and the time a batch takes. The server and the workers each add
what only they can see."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class EngineMetrics:
    def __init__(self, batch_help: str) -> None:
        self.registry = CollectorRegistry()
        self.events = Counter(
            "crm2stream_events",
            "Input events processed, by declared type and outcome",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "crm2stream_dead_letters",
            "Input records sent to the dead-letter topic (rejected or duplicate)",
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "crm2stream_batch_processing_seconds",
            batch_help,
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
