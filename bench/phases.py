"""Where an ingest's time and peak RSS go, phase by phase: the figures behind
``docs/performance.md``'s "where the 10M peak sits".

``python -m bench.phases DIR FILE`` ingests FILE into the data directory DIR exactly as
``crm2stream --data-dir DIR ingest FILE`` does (settings from the environment, as the
command's), while a thread samples the process's RSS every 50 ms; ``python -m
bench.phases DIR --replay`` runs ``crm2stream --data-dir DIR replay`` so, the digest it
prints at its end a phase of its own (``digest``). It then prints, per
phase, the seconds spent in it, how many times it ran and the most RSS sampled while in
it: ``open`` (loading the directory), ``checkpoint`` (each checkpoint, but for the
publication it begins with), ``publication`` (the table topics), ``topic compaction``,
and ``batches`` (everything else after the open: decoding, applying, score changes,
the log). The RSS is also sampled as each phase begins and ends; sampling misses what
lasts less than 50 ms, so a phase's peak is a floor.
Run it pinned to one core (``taskset -c 0``), as the scale step runs the command.
"""

from __future__ import annotations

import argparse
import functools
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.memory import rss_mib

SAMPLE_SECONDS = 0.05

#: the phase under way, innermost last (the sampler reads the last)
stack: list[str] = ["batches"]
seconds: defaultdict[str, float] = defaultdict(float)
calls: Counter[str] = Counter()
peak: Counter[str] = Counter()


def phase(name: str, call: Callable[..., Any]) -> Callable[..., Any]:
    """``call``, counted as the phase ``name`` while it runs."""

    @functools.wraps(call)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        note()  # the enclosing phase, as it hands over
        stack.append(name)
        started = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            spent = time.perf_counter() - started
            note()
            stack.pop()
            seconds[name] += spent
            calls[name] += 1
            seconds[stack[-1]] -= spent  # the enclosing phase's time is its own

    return wrapper


def note() -> None:
    """Sample the RSS into the phase under way."""
    rss, now = rss_mib(), stack[-1]
    peak[now] = max(peak[now], rss)


def sample(stop: threading.Event) -> None:
    while not stop.wait(SAMPLE_SECONDS):
        note()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("file", type=Path, nargs="?", help="the file to ingest")
    parser.add_argument("--replay", action="store_true", help="replay DIR in place instead")
    args = parser.parse_args()
    if (args.file is None) != args.replay:
        parser.error("give either FILE or --replay")

    from crm2stream import cli
    from crm2stream.engine import checkpointing, publishing
    from crm2stream.engine.embedded import EmbeddedEngine

    # the engine calls these through their modules: replaced there, every call is timed
    checkpointing.checkpoint = phase("checkpoint", checkpointing.checkpoint)
    publishing.publish = phase("publication", publishing.publish)
    publishing.compact_due = phase("topic compaction", publishing.compact_due)
    EmbeddedEngine.__init__ = phase("open", EmbeddedEngine.__init__)  # type: ignore[method-assign]
    EmbeddedEngine.digest = phase("digest", EmbeddedEngine.digest)  # type: ignore[method-assign]
    command = ["replay"] if args.replay else ["ingest", str(args.file)]

    stop = threading.Event()
    sampler = threading.Thread(target=sample, args=(stop,), daemon=True)
    started = time.perf_counter()
    sampler.start()
    try:
        code = cli.run(["--data-dir", str(args.data_dir), *command])
    finally:
        stop.set()
        sampler.join()
        note()
    wall = time.perf_counter() - started
    seconds["batches"] += wall
    print(f"{command[0]} {wall:.2f} s, exit {code}; RSS at most {max(peak.values()):,} MiB")
    names = ["open", "batches", "checkpoint", "publication", "topic compaction"]
    for name in names + ["digest"] * args.replay:
        times = "" if name == "batches" else f" in {calls[name]} call(s)"
        print(f"{name}: {seconds[name]:.2f} s{times}, RSS at most {peak[name]:,} MiB")


if __name__ == "__main__":
    main()
