"""One person's history read inside a process, without starting Python or importing the
command line: what ``crm2stream history IDENTIFIER`` spends reading.

``python -m bench.point_read DIR IDENTIFIER`` opens DIR as the command does for a point
read (the facts left in the store), then reads the identifier's person and their events
``--reads`` times (the first on a store just opened, its caches cold). It prints one JSON
object: the events found, the milliseconds of the first read and the median of the others,
the open's milliseconds, and the peak RSS (MiB). Run it pinned to one core, as the scale
step does.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import orjson

from bench.memory import status_kib


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("identifier", help="kind:value")
    parser.add_argument("--reads", type=int, default=6, help="reads in all (6)")
    args = parser.parse_args()

    from crm2stream.cli import _open
    from crm2stream.settings import Settings

    began = time.perf_counter()
    engine = _open(Settings(), args.data_dir, load=False)
    opened = time.perf_counter() - began
    try:
        timings, found = [], 0
        for _ in range(max(args.reads, 2)):
            began = time.perf_counter()
            members = engine.members(args.identifier)
            if members is None:
                raise SystemExit(f"no identifier {args.identifier}")
            found = len(engine.history(members))
            timings.append(time.perf_counter() - began)
    finally:
        engine.close()
    report = {
        "events": found,
        "open_ms": round(opened * 1000, 1),
        "first_read_ms": round(timings[0] * 1000, 1),
        "read_ms": round(statistics.median(timings[1:]) * 1000, 1),
        "peak_rss_mib": round(status_kib("VmHWM") / 1024),
    }
    print(orjson.dumps(report).decode())


if __name__ == "__main__":
    main()
