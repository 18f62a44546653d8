"""What the compiled core's memory holds, structure by structure, measured: the figures
behind ``docs/performance.md``'s "Where the time and memory go".

``python -m bench.memory DIR FILE [--batches N]`` opens a data directory (it is written
to: give it a copy), applies the first N batches of 50,000 lines of FILE (the lines that
come after the directory's), and prints after each batch the process's
RSS and the bytes the core holds (now, and the most during the batch). Then it drops the
core's structures one by one and prints what each gave back, beside the core's own
estimate (``Core.footprint``). It sets ``CRM2STREAM_COUNT_ALLOCATIONS`` for itself, and
must be the process that loads the core; run it pinned (``taskset -c 1``).

The counts are bytes allocated: a vector's room not yet used counts, though the system
gives it pages only once written, so a structure can count more than it adds to RSS
(growing the per-identifier vectors by a quarter instead of doubling them counted 105 MiB
less after four batches of the 9M tail, and left the peak RSS where it was).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

BATCH = 50_000
MIB = 1 << 20


def status_kib(field: str, pid: int | str = "self") -> int:
    """A process's ``field`` of ``/proc/PID/status`` in KiB: ``VmRSS`` (resident now),
    ``VmHWM`` (its peak since it started its program; a child's ``ru_maxrss`` would count
    its parent's as it forked)."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def rss_mib() -> int:
    return status_kib("VmRSS") // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("file", type=Path)
    parser.add_argument("--batches", type=int, default=4)
    args = parser.parse_args()
    if "crm2stream._native" in sys.modules:
        raise SystemExit("the core is loaded already: counting is set as it loads")
    os.environ["CRM2STREAM_COUNT_ALLOCATIONS"] = "1"
    from crm2stream import _native
    from crm2stream.core.config import CoreConfig
    from crm2stream.engine.embedded import EmbeddedEngine
    from crm2stream.engine.lines import read_chunks

    def held() -> str:
        now, peak = _native.allocated() or (0, 0)
        return f"core {now // MIB:,} MiB (at most {peak // MIB:,})"

    engine = EmbeddedEngine(args.data_dir, CoreConfig(id_key=b"bench"), batch_size=BATCH)
    print(f"opened: RSS {rss_mib():,} MiB, {held()}", flush=True)
    with args.file.open("rb") as stream:
        for n, (chunk, _, _) in enumerate(read_chunks(stream, BATCH), start=1):
            engine.submit(chunk)
            print(f"batch {n}: RSS {rss_mib():,} MiB, {held()}", flush=True)
            if n >= args.batches:
                break
    db = engine.store.db
    rocksdb = {
        "memtables": db.property_int_value("rocksdb.cur-size-all-mem-tables") or 0,
        "table readers (indexes, filters)": (
            db.property_int_value("rocksdb.estimate-table-readers-mem") or 0
        ),
        "block cache": db.property_int_value("rocksdb.block-cache-usage") or 0,
    }
    print("RocksDB: " + ", ".join(f"{name} {size // MIB:,} MiB" for name, size in rocksdb.items()))
    estimated = {name: size for name, _, size in engine.core.footprint()}
    measured = engine.core.measure_by_dropping() or []
    print(f"{'structure':30} {'measured MiB':>12} {'estimated MiB':>13}")
    for name, size in sorted(measured, key=lambda item: -item[1]):
        guess = f"{estimated[name] // MIB:,}" if name in estimated else ""
        print(f"{name:30} {size // MIB:12,} {guess:>13}")
    print(f"left in the core: {held()}; RSS {rss_mib():,} MiB")


if __name__ == "__main__":
    main()
