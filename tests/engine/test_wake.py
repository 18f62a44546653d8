"""A loop that waits for writes ends when it is cancelled, whenever the cancellation lands."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable

import pytest

from crm2stream.engine.wake import woken

Wait = Callable[[asyncio.Event, float], Awaitable[object]]


async def _wait_for(event: asyncio.Event, seconds: float) -> None:
    """What the read model's loop did before: ``asyncio.wait_for`` (the control)."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)


async def _ends_when_cancelled(wait: Wait, ticks: int) -> bool:
    """A follower loop (a fresh event per round, as the feeds hand out) is cancelled
    ``ticks`` loop turns after its event was set: whether it ended."""
    events: list[asyncio.Event] = []

    async def follow() -> None:
        while True:
            events.append(asyncio.Event())
            await wait(events[-1], 5.0)

    task = asyncio.create_task(follow())
    for _ in range(3):
        await asyncio.sleep(0)
    events[-1].set()
    for _ in range(ticks):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait([task], timeout=1.0)
    if not done:
        task.cancel()
        await asyncio.wait([task], timeout=1.0)
    return bool(done) and task.cancelled()


@pytest.mark.parametrize("ticks", range(6))
def test_a_cancelled_follower_ends_whenever_the_cancellation_lands(ticks: int) -> None:
    assert asyncio.run(_ends_when_cancelled(woken, ticks))


def test_the_scenario_catches_the_race_of_wait_for() -> None:
    """The control, so that the test above keeps meaning something: the same follower on
    ``asyncio.wait_for`` loses the cancellation on Python 3.11 (cpython#86296), and keeps
    it from 3.12 on, where ``wait_for`` is built on ``asyncio.timeout``."""
    lost = [t for t in range(6) if not asyncio.run(_ends_when_cancelled(_wait_for, t))]
    assert bool(lost) == (sys.version_info < (3, 12)), lost


def test_woken_says_whether_the_event_came() -> None:
    async def both() -> tuple[bool, bool]:
        event = asyncio.Event()
        asyncio.get_running_loop().call_soon(event.set)
        return await woken(event, 5.0), await woken(asyncio.Event(), 0.01)

    assert asyncio.run(both()) == (True, False)
