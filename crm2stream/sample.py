"""``make sample``: the bundled sample campaign through the embedded engine, tables printed.

Ingests ``examples/campaign.ndjson`` (a seeded campaign from ``synth``, with a few bad
lines to show the dead-letter table) into a data directory and prints what a marketer
would look at first: who the valuable people are, who may be contacted, what was refused.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from crm2stream.engine.embedded import EmbeddedEngine
from crm2stream.settings import Settings

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "campaign.ndjson"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, default=Path("crm2stream-data"))
    parser.add_argument("--sample", type=Path, default=SAMPLE)
    args = parser.parse_args(argv)
    settings = Settings()
    out = sys.stdout
    with EmbeddedEngine(
        args.data_dir, settings.core_config(), batch_size=settings.batch_size
    ) as engine:
        counts = engine.ingest_file(args.sample)
        out.write(f"ingested {args.sample.name} into {args.data_dir}: {counts.as_dict()}\n")
        out.write("(ingesting the same file again only counts duplicates)\n\n")
        persons = list(engine.export("persons"))
        merged = sum(1 for p in persons if p["members"] > 1)
        out.write(f"persons: {len(persons)} ({merged} recognised across several identifiers)\n")
        scores = sorted(engine.export("scores"), key=lambda r: (-r["composite"], r["person_id"]))
        tiers = Counter(row["tier"] for row in scores)
        out.write(f"tiers: {dict(sorted(tiers.items()))}\n\ntop 10 by composite value:\n")
        out.write(f"  {'person':24} {'label':34} {'comp':>6} {'cons':>9} {'pop':>7} {'soc':>7}\n")
        for row in scores[:10]:
            out.write(
                f"  {row['person_id']:24} {row['label'][:34]:34} {row['composite']:6.1f} "
                f"{row['consumption']:9.1f} {row['popularity']:7.1f} {row['social']:7.1f}\n"
            )
        triggers = list(engine.export("marketing-triggers"))
        changes = list(engine.export("score-changes"))
        out.write(f"\nscore changes: {len(changes)}, marketing triggers: {len(triggers)}\n")
        dlq = list(engine.export("dlq"))
        out.write(f"dead letters: {len(dlq)}\n")
        for row in dlq[:5]:
            out.write(f"  offset {row['offset']}: {row['reason']}: {row['error'][:80]}\n")
        out.write(f"\ndigest: {engine.digest()}\n")
        command = Path(sys.executable).parent / "crm2stream"
        out.write(f"explore: {command} --data-dir {args.data_dir} export scores | head\n")


if __name__ == "__main__":
    main()
