"""The engine's host: requests batched onto the engine's thread, a bound on what waits."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crm2stream.api.hub import EngineHost, TopicFeed
from crm2stream.engine import compaction, write
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
    monkeypatch.setattr(write, "PAGE_LINES", 7)
    with EmbeddedEngine(tmp_path, CFG, batch_size=250) as engine:
        engine.ingest_lines(CAMPAIGN)
        with _feed_of(engine) as feed:
            for limit in (1, 10, 300, 5000):
                first, lines = asyncio.run(feed.read_log(start, limit))
                assert first == start and lines == CAMPAIGN[start : start + len(lines)]
                assert len(lines) >= min(limit, len(CAMPAIGN) - start)


@contextlib.contextmanager
def _feed_of(engine: EmbeddedEngine) -> Iterator[TopicFeed]:
    """A feed of an engine opened on this thread, let go of at the end: attached, the
    engine and the feed refer to each other, and a collector running on another thread
    would drop the compiled core there, which it refuses."""
    feed, loop = TopicFeed(), asyncio.new_event_loop()
    feed.attach(engine, loop)
    try:
        yield feed
    finally:
        engine.listeners.clear()
        loop.close()


def _record(offset: int) -> bytes:
    return b'{"at":"t","key":"k%d","offset":%d,"value":%d}' % (offset % 4, offset, offset)


def _counted(call: Callable[..., Any], calls: list[Any], noted: int) -> Callable[..., Any]:
    """``call``, noting argument number ``noted`` of every call."""

    def counted(*args: Any) -> Any:
        calls.append(args[noted])
        return call(*args)

    return counted


def test_topic_reads_go_through_parts_a_chunk_at_a_time_as_the_store_holds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts of 5 records, then a compacted one with gaps: reads of any size from any
    offset, by readers taking turns (each read may end inside a part the feed keeps),
    give what the store holds from that offset; a reader going a record at a time
    splits each part once."""
    with EmbeddedEngine(tmp_path, CFG) as engine:
        batch = engine.store.batch()
        for first in (0, 5, 10):
            batch.outputs("t", first, b"\n".join(_record(o) for o in range(first, first + 5)))
        compacted = [16, 18, 19]
        batch.outputs("t", 15, compaction.COMPACTED + b"\n".join(map(_record, compacted)))
        batch.outputs("t", 20, _record(20))
        engine.store.write(batch)
        engine.output_ends["t"] = 21  # as the engine's own writes do
        held = list(engine.store.output_lines("t"))
        assert [o for o, _ in held] == [*range(15), *compacted, 20]
        with _feed_of(engine) as feed:
            split: list[int] = []
            monkeypatch.setattr(compaction, "records", _counted(compaction.records, split, 0))
            touched: list[int] = []
            parts_from = engine.store.output_parts_from
            monkeypatch.setattr(engine.store, "output_parts_from", _counted(parts_from, touched, 1))
            position, one_by_one = 0, []
            while records := asyncio.run(feed.read("t", position, 1)):
                one_by_one += records
                position = records[-1][0] + 1
            assert one_by_one == held
            assert len(touched) == 5  # the store once per part
            assert asyncio.run(feed.read("t", position, 1)) == []  # waiting at the end...
            assert len(touched) == 5  # ...touches nothing
            assert split == [0, 5, 10, 15, 20]  # each part once
            split.clear()
            position, one_by_one = 0, []  # again, with a reader waiting at the end meanwhile
            while records := asyncio.run(feed.read("t", position, 1)):
                one_by_one += records
                position = records[-1][0] + 1
                assert asyncio.run(feed.read("t", 21, 1)) == []
            assert one_by_one == held
            assert split == [0, 5, 10, 15, 20]  # each part once: the waiting costs nothing
            for start in range(22):
                for limit in (1, 2, 4, 7, 30):
                    expected = [r for r in held if r[0] >= start][:limit]
                    assert asyncio.run(feed.read("t", start, limit)) == expected
            for limits in ((1, 3), (4, 2), (6, 7)):
                positions = [0, 0]
                got: list[list[tuple[int, bytes]]] = [[], []]
                while any(p <= 20 for p in positions):
                    for n, limit in enumerate(limits):
                        records = asyncio.run(feed.read("t", positions[n], limit))
                        if records:
                            got[n] += records
                            positions[n] = records[-1][0] + 1
                assert got == [held, held]
