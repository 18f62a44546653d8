"""Waiting for a write with a timeout, in loops that must end when they are cancelled.

Not ``asyncio.wait_for``: on Python 3.11 it swallows a cancellation that lands within a
couple of loop ticks of the awaited event being set (cpython#86296, fixed in 3.12 by
building ``wait_for`` on ``asyncio.timeout``). A loop around it then never ends, and a
server waiting for that loop on shutdown never stops. ``asyncio.timeout`` passes every
cancellation on.
"""

from __future__ import annotations

import asyncio


async def woken(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` passed; whether it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True
