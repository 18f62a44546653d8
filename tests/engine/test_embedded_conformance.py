"""The conformance suite against the embedded engine (rocksdict state, local log), from
one event per batch to every event in one, and from no identifier body kept in memory
after a checkpoint to all of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crm2stream.engine.embedded import EmbeddedEngine
from tests.conformance import ConformanceSuite
from tests.harness import CFG


class Embedded:
    def __init__(self, path: Path, batch_size: int, cache: int) -> None:
        self.path = path
        self.batch_size = batch_size
        self.cache = cache
        self.engine = self._open()

    def _open(self) -> EmbeddedEngine:
        return EmbeddedEngine(
            self.path,
            CFG,
            batch_size=self.batch_size,
            checkpoint_events=700,
            cache_bytes=self.cache,
        )

    def ingest(self, lines: list[bytes]) -> dict[str, int]:
        return self.engine.ingest_lines(lines).as_dict()

    def export(self, table: str, as_of: int | None = None) -> list[dict[str, Any]]:
        return list(self.engine.export(table, as_of))

    def digest(self, as_of: int | None = None) -> str:
        return self.engine.digest(as_of)

    def topic(self, name: str) -> list[dict[str, Any]]:
        return list(self.engine.store.outputs(name))

    def replay(self) -> str:
        self.engine.replay_in_place()
        return self.engine.digest()

    def reopen(self) -> None:
        self.engine.close()
        self.engine = self._open()


@pytest.fixture(
    params=[(1, 1 << 30), (97, 0), (10_000, 1 << 30), (500, 2_000)],
    ids=["batch1", "batch97-cache0", "batch10k", "batch500-cache2k"],
)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    embedded = Embedded(tmp_path / "data", *request.param)
    yield embedded
    embedded.engine.close()


class TestEmbeddedEngine(ConformanceSuite):
    pass
