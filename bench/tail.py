"""Where a batch's time goes on a large data directory: the figures behind the rows of
``docs/performance.md``'s "What each change did" measured on the 9M tail.

``python -m bench.tail DIR FILE [--batches N] [--publish [--publish-items P]]
[--cache-mib M]`` opens a data directory ingested with ``CRM2STREAM_ID_KEY=bench``, as
the scale step's are (it is written to: give it a copy), with a cache of M MiB (by
default 512, the engine's), printing how long opening it took (loading its facts), and
applies the first N batches of 50,000 lines of FILE (the lines that come after the
directory's; ``--batches 0``: none). It prints per batch its seconds (and each
phase's), the process's RSS and the bodies read back from the store; then, in total, the
seconds spent applying events, valuing the persons they touched (score changes) and
writing to the store, the CPU time of the process over the batches (every thread's), how
many bodies each of the first two read back from the store, and the core's largest
structures (``Core.footprint``). ``--publish`` then publishes the table topics and
prints how long that took and the most RSS it reached (sampled every 50 ms), in writes
of ``--publish-items`` persons (by default the engine's). ``--count`` also counts the
core's allocations (``CRM2STREAM_COUNT_ALLOCATIONS``, set before the core loads) and
prints, per phase, the most it held above what it held when the phase began. Run it
pinned to one core (``taskset -c 1``).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.memory import rss_mib

BATCH = 50_000


#: per phase, the most bytes the core held above what it held when the phase began
#: (with ``--count``)
above: Counter[str] = Counter()


def timed(
    spent: defaultdict[str, float], name: str, call: Callable[..., Any]
) -> Callable[..., Any]:
    """``call``, adding the seconds it takes to ``spent[name]`` (and, counting, the most
    it held above its start to ``above``)."""
    from crm2stream import _native

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        held = _native.allocated()
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started
            now = _native.allocated()
            if held is not None and now is not None:
                above[name] = max(above[name], now[1] - held[0])

    return wrapper


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("file", type=Path)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--publish", action="store_true")
    parser.add_argument("--cache-mib", type=int, default=512)
    parser.add_argument("--count", action="store_true")
    parser.add_argument("--publish-items", type=int, default=None)
    args = parser.parse_args()
    if args.count:
        if "crm2stream._native" in sys.modules:
            raise SystemExit("the core is loaded already: counting is set as it loads")
        os.environ["CRM2STREAM_COUNT_ALLOCATIONS"] = "1"
    from crm2stream.core.config import CoreConfig
    from crm2stream.engine import publishing
    from crm2stream.engine.embedded import EmbeddedEngine
    from crm2stream.engine.lines import read_chunks

    started = time.perf_counter()
    engine = EmbeddedEngine(
        args.data_dir,
        CoreConfig(id_key=b"bench"),
        batch_size=BATCH,
        cache_bytes=args.cache_mib << 20,
    )
    print(f"opened in {time.perf_counter() - started:.1f} s: RSS {rss_mib():,} MiB", flush=True)
    spent: defaultdict[str, float] = defaultdict(float)
    reads: Counter[str] = Counter()
    phase = ["other"]
    fetch = engine.store.bodies

    def counted_fetch(keys: list[bytes]) -> list[bytes | None]:
        reads[phase[0]] += len(keys)
        return fetch(keys)

    core = engine.core
    core.attach_store(counted_fetch, engine.cache_bytes)

    def in_phase(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        """``call``, its store reads counted under ``name``."""

        def wrapper(*args: Any) -> Any:
            phase[0] = name
            try:
                return call(*args)
            finally:
                phase[0] = "other"

        return timed(spent, name, wrapper)

    core.process = in_phase("applying", core.process)  # type: ignore[method-assign]
    core.score_changes = in_phase("score changes", core.score_changes)  # type: ignore[method-assign]
    engine.store.write = timed(spent, "store writes", engine.store.write)  # type: ignore[method-assign]
    total = 0.0
    before, at = 0, dict(spent)
    cpu_before = time.process_time()
    with args.file.open("rb") as stream:
        for n, (chunk, _, _) in enumerate(read_chunks(stream, BATCH), start=1):
            if n > args.batches:
                break
            started = time.perf_counter()
            engine.submit(chunk)
            took = time.perf_counter() - started
            total += took
            read = sum(reads.values())
            phases = ", ".join(f"{name} {spent[name] - at.get(name, 0):.2f}" for name in spent)
            rss = rss_mib()
            print(
                f"batch {n}: {took:.2f} s ({phases}), RSS {rss:,} MiB, {read - before:,} read",
                flush=True,
            )
            before, at = read, dict(spent)
    parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in spent.items())
    print(f"batches {total:.2f} s: {parts}")
    print(f"CPU over the batches, every thread: {time.process_time() - cpu_before:.2f} s")
    print("bodies read from the store: " + ", ".join(f"{k} {v:,}" for k, v in reads.items()))
    if above:
        most = ", ".join(f"{name} {size >> 20:,} MiB" for name, size in above.items())
        print(f"the core held at most, above a phase's start: {most}")
    print("the core's largest structures (Core.footprint):")
    for name, entries, size in core.footprint()[:8]:
        print(f"  {name}: {entries:,} entries, {size >> 20:,} MiB")
    if args.publish:
        peak = [rss_mib()]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.05):
                peak[0] = max(peak[0], rss_mib())

        threading.Thread(target=sample, daemon=True).start()
        if args.publish_items:
            publishing.PUBLISH_ITEMS = args.publish_items
        started = time.perf_counter()
        publishing.publish(engine)
        done.set()
        took = time.perf_counter() - started
        print(
            f"publication {took:.1f} s: RSS at most {peak[0]:,} MiB, after it {rss_mib():,} MiB;"
            f" writes of {publishing.PUBLISH_ITEMS:,} persons"
        )
    engine.close()


if __name__ == "__main__":
    main()
