"""One real Kafka broker for the whole session (see ``broker``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kafka.broker import Broker


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    broker = Broker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.stop()
