"""The conformance suite against the distributed engine: faust workers on a real broker,
one worker on one input partition, and two workers sharing four (the stage moves between
them as they join). Each test gets a cluster of its own, started while the one before runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conformance import ConformanceSuite
from tests.kafka.broker import Broker
from tests.kafka.cluster import KafkaEngine, Spares


@pytest.fixture(scope="module")
def spares(kafka: Broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Spares]:
    pool = Spares(kafka, tmp_path_factory.mktemp("clusters"))
    yield pool
    pool.close()


@pytest.fixture(
    params=[(1, 1), (4, 2)],
    ids=["1-partition-1-worker", "4-partitions-2-workers"],
)
def engine(request: pytest.FixtureRequest, spares: Spares) -> Iterator[KafkaEngine]:
    cluster = spares.take(*request.param)
    try:
        yield KafkaEngine(cluster)
    finally:
        cluster.close()


class TestKafkaEngine(ConformanceSuite):
    pass
