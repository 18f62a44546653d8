"""Where an embedded ingest spends its time as the history grows: the figures behind
``docs/performance.md``'s "As the history grows".

``python -m bench.parts FILE [--events N] [--every M]`` ingests the first N lines of FILE
(a bench dataset) in batches of 50,000 into a fresh directory, checkpointing every M
events, and prints per checkpoint interval: seconds in the compiled core applying the
batches and in score changes; then for the checkpoint: publishing the table topics (and
how many records and MiB each topic got), compacting them, and encoding the checkpoint.
It wraps the engine's own methods and times them; run it pinned (``taskset -c 1``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crm2stream.core.config import CoreConfig
from crm2stream.core.tables import STATE_TABLES
from crm2stream.engine import publishing
from crm2stream.engine.embedded import EmbeddedEngine

BATCH = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--every", type=int, default=500_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data:
        engine = EmbeddedEngine(
            Path(data), CoreConfig(id_key=b"bench"), batch_size=BATCH, checkpoint_events=10**12
        )
        spent: dict[str, float] = {}
        records = [0] * len(STATE_TABLES)
        size = [0] * len(STATE_TABLES)

        def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(*a: Any, **k: Any) -> Any:
                started = time.perf_counter()
                try:
                    return fn(*a, **k)
                finally:
                    spent[name] = spent.get(name, 0.0) + time.perf_counter() - started

            return wrapper

        core = engine.core
        publish = core.publish

        def counted(bases: list[int], limit: int) -> list[tuple[int, bytes]]:
            out = publish(bases, limit)
            for i, (count, ndjson) in enumerate(out):
                records[i] += count
                size[i] += len(ndjson)
            return out

        core.process = timed("apply", core.process)  # type: ignore[method-assign]
        core.score_changes = timed("score changes", core.score_changes)  # type: ignore[method-assign]
        core.publish = counted  # type: ignore[method-assign]
        publishing.publish = timed("publish", publishing.publish)
        publishing.compact_due = timed("compact", publishing.compact_due)
        core.checkpoint = timed("encode checkpoint", core.checkpoint)  # type: ignore[method-assign]
        engine.clock = lambda: 1 << 62  # every event arrived after it was dated
        done, batch = 0, []
        with args.file.open("rb") as handle:
            for line in handle:
                batch.append(line.rstrip(b"\n"))
                if len(batch) < BATCH:
                    continue
                engine.submit(b"\n".join(batch))
                done, batch = done + len(batch), []
                if done % args.every == 0:
                    engine.checkpoint(publish=True)  # what each interval publishes
                    print(
                        f"{done:,} events: " + ", ".join(f"{k} {v:.2f} s" for k, v in spent.items())
                    )
                    for table, count, nbytes in zip(STATE_TABLES, records, size, strict=True):
                        print(f"  {table:14} {count:>10,} records {nbytes / 2**20:8.1f} MiB")
                    spent.clear()
                    records[:] = size[:] = [0] * len(STATE_TABLES)
                if done >= args.events:
                    break


if __name__ == "__main__":
    main()
