"""The engine's host: requests batched onto the engine's thread, a bound on what waits."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from crm2stream.api.hub import EngineHost, TopicFeed
from crm2stream.engine import store
from crm2stream.engine.embedded import EmbeddedEngine
from crm2stream.engine.host import Overloaded
from tests.conformance import CAMPAIGN
from tests.harness import CFG


def test_requests_queue_up_to_a_bound_then_are_refused(tmp_path: Path) -> None:
    release = threading.Event()
    engines: list[EmbeddedEngine] = []

    def open_engine() -> EmbeddedEngine:
        engine = EmbeddedEngine(tmp_path / "data", CFG)
        submit = engine.submit

        def slow_submit(chunk: bytes, *args: Any, **kwargs: Any) -> Any:
            release.wait(timeout=30)  # the engine is busy until the test says so
            return submit(chunk, *args, **kwargs)

        engine.submit = slow_submit  # type: ignore[method-assign]
        engines.append(engine)
        return engine

    host = EngineHost(open_engine, max_queued_lines=5)

    async def scenario() -> tuple[list[Any], BaseException | None]:
        host.start(asyncio.get_running_loop())
        busy = asyncio.create_task(host.submit(CAMPAIGN[:10]))  # taken at once, then blocks
        await asyncio.sleep(0.5)
        waiting = asyncio.create_task(host.submit(CAMPAIGN[10:13]))
        await asyncio.sleep(0.1)
        refused: BaseException | None = None
        try:
            await host.submit(CAMPAIGN[13:16])
        except Overloaded as exc:
            refused = exc
        release.set()
        return [await busy, await waiting], refused

    answers, refused = asyncio.run(scenario())
    host.stop()
    assert isinstance(refused, Overloaded) and "3 lines are waiting" in str(refused)
    assert [len(a) for a in answers] == [10, 3]
    assert all(o.status == "accepted" for a in answers for o in a)


def test_a_failed_open_is_raised_to_the_caller(tmp_path: Path) -> None:
    def broken() -> EmbeddedEngine:
        raise OSError("disk on fire")

    host = EngineHost(broken)
    with pytest.raises(OSError, match="disk on fire"):
        host.open()
    assert not host.running


@pytest.mark.parametrize("start", [0, 3, 7, 249, 250, 1000, len(CAMPAIGN) - 1])
def test_the_log_reads_back_from_any_position_across_batches_and_pages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, start: int
) -> None:
    monkeypatch.setattr(store, "PAGE_LINES", 7)
    with EmbeddedEngine(tmp_path, CFG, batch_size=250) as engine:
        engine.ingest_lines(CAMPAIGN)
        feed = TopicFeed()
        feed.attach(engine, asyncio.new_event_loop())
        for limit in (1, 10, 300, 5000):
            first, lines = asyncio.run(feed.read_log(start, limit))
            assert first == start and lines == CAMPAIGN[start : start + len(lines)]
            assert len(lines) >= min(limit, len(CAMPAIGN) - start)
