"""``make bench``: events/s and peak memory of ingest and replay on the embedded engine,
against a floor baseline that only parses and validates the same lines with pydantic.

Every measured step runs in its own process pinned to one core; peak RSS is that
process's maximum resident set size. Each step runs ``--runs`` times (3 by default): the
figures are the median run's, with the fastest and slowest beside them, since a shared
machine's speed drifts from one minute to the next. The synthetic input is generated
once and cached under ``.bench/``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from crm2stream.synth import Campaign, lines

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".bench"
FLOOR = """
import sys
from pydantic import TypeAdapter
from crm2stream.core.events import Event
adapter = TypeAdapter(Event)
count = 0
with open(sys.argv[1], "rb") as handle:
    for line in handle:
        adapter.validate_json(line)
        count += 1
print(count)
"""


@dataclass
class Result:
    name: str
    events: int
    runs: list[float]  # seconds of each run
    peak_rss_mib: float  # the highest of all runs

    @property
    def seconds(self) -> float:
        return statistics.median(self.runs)

    @property
    def rate(self) -> float:
        return self.events / self.seconds


#: the campaign's days: it ends the day before the bench runs, so that every event is
#: dated before it arrives (an event dated more than a day later is rejected)
DAYS = 180


def dataset(events: int, identifiers: int, days: int = DAYS) -> Path:
    """The campaign's file, generated once per size and start day and cached."""
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start -= timedelta(days=days + 1)
    name = f"events-{events}-{identifiers}" + (f"-{days}d" if days != DAYS else "")
    path = WORK / f"{name}-{start:%Y%m%d}.ndjson"
    if not path.exists():
        WORK.mkdir(exist_ok=True)
        started = time.monotonic()
        partial = path.with_suffix(".partial")
        campaign = Campaign(identifiers=identifiers, events=events, days=days, seed=1, start=start)
        with partial.open("wb") as out:
            for raw in lines(campaign):
                out.write(raw + b"\n")
        partial.rename(path)
        print(f"generated {path.name} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return path


def measure(
    name: str,
    events: int,
    argv: list[str],
    env: dict[str, str],
    runs: int,
    before: Callable[[], None] = lambda: None,
) -> Result:
    """Run argv ``runs`` times (calling ``before`` first each time)."""
    timings = []
    for _ in range(runs):
        before()
        timings.append(run_once(name, argv, env))
    return Result(name, events, [t for t, _ in timings], max(rss for _, rss in timings))


def run_once(name: str, argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run argv pinned to CPU 0; the command's wall time and peak RSS in MiB (measured by
    ``bench.peak``, so that what this process holds does not count)."""
    with tempfile.NamedTemporaryFile(prefix="crm2stream-peak-") as peak:
        proc = subprocess.run(
            [sys.executable, "-m", "bench.peak", peak.name, *argv],
            env=env,
            stdout=subprocess.PIPE,
            preexec_fn=lambda: os.sched_setaffinity(0, {0}),
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"{name} failed ({proc.returncode}): {proc.stdout.decode()[-500:]}")
        seconds, kib = Path(peak.name).read_text().split()
        return float(seconds), int(kib) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--identifiers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3, help="runs per step (median reported)")
    parser.add_argument(
        "--kafka-events", type=int, default=200_000, help="input of the Kafka step (200,000)"
    )
    parser.add_argument("--rate", type=float, default=1000.0, help="Kafka latency step events/s")
    parser.add_argument("--latency-seconds", type=float, default=30.0)
    parser.add_argument(
        "--scale-events",
        default="1000000,10000000",
        help="the scale step's sizes, comma-separated ('' skips the step)",
    )
    parser.add_argument("--scale-identifiers", type=int, default=1_000_000)
    parser.add_argument("--scale-days", type=int, default=730)
    args = parser.parse_args()
    source = dataset(args.events, args.identifiers)
    data = WORK / "data"

    def fresh() -> None:
        shutil.rmtree(data, ignore_errors=True)

    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM2STREAM_")}
    env["CRM2STREAM_ID_KEY"] = "bench"
    cli = [sys.executable, "-m", "crm2stream.cli", "--data-dir", str(data)]
    n = args.events
    floor_argv = [sys.executable, "-c", FLOOR, str(source)]
    runs = args.runs
    results = [
        measure("floor: pydantic parse+validate", n, floor_argv, env, runs),
        measure("ingest (embedded)", n, [*cli, "ingest", str(source)], env, runs, fresh),
        measure("replay (rebuild + digest)", n, [*cli, "replay"], env, runs),
        measure("digest (all state tables)", n, [*cli, "digest"], env, runs),
    ]
    floor = results[0]
    print(f"\n{n:,} events, {args.identifiers:,} identifiers, one core ({os.cpu_count()} here)")
    print(f"median of {runs} runs; the range is the fastest and slowest run")
    header = f"{'step':32} {'events/s':>9} {'seconds':>8} {'range (s)':>12} {'peak RSS':>10}"
    print(f"{header} {'vs floor':>9}")
    for result in results:
        spread = f"{min(result.runs):.1f}-{max(result.runs):.1f}"
        print(
            f"{result.name:32} {result.rate:9,.0f} {result.seconds:8.1f} {spread:>12} "
            f"{result.peak_rss_mib:6.0f} MiB {result.rate / floor.rate:8.2f}x"
        )
    report = [
        {
            "step": r.name,
            "events": r.events,
            "seconds": round(r.seconds, 2),
            "runs_seconds": [round(t, 2) for t in r.runs],
            "events_per_second": round(r.rate),
            "peak_rss_mib": round(r.peak_rss_mib),
        }
        for r in results
    ]
    report.append(_kafka(source, args))
    sizes = [int(size) for size in args.scale_events.split(",") if size]
    if sizes:
        from bench import scale

        report.append(scale.run(sizes, args.scale_identifiers, args.scale_days, env))
    (WORK / "results.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    print(f"\nwritten to {WORK / 'results.json'}")


def _kafka(source: Path, args: argparse.Namespace) -> dict[str, object]:
    """The distributed engine on a real broker (see ``bench.kafka``)."""
    from bench import kafka

    with source.open("rb") as handle:
        lines = [line.rstrip(b"\n") for line in itertools.islice(handle, args.kafka_events)]
    latency_events = int(args.rate * args.latency_seconds)
    result = kafka.run(lines, latency_events, args.rate)
    print(f"\nKafka engine, real broker, {len(lines):,} events, one worker pinned to one core")
    print(
        f"{'crm2stream worker':32} {result.worker_rate:9,.0f} {result.worker_seconds:8.1f} "
        f"{'':>12} {result.worker_rss_mib:6.0f} MiB"
    )
    print(
        f"{'minimal faust agent (1 update)':32} {result.minimal_rate:9,.0f} "
        f"{result.minimal_seconds:8.1f}"
    )
    print(
        f"{'faust floor (take_events, count)':32} {result.faust_floor_rate:9,.0f} "
        f"{len(lines) / result.faust_floor_rate:8.1f}"
    )
    print(f"worker vs minimal agent: {result.worker_rate / result.minimal_rate:.2f}x")
    print(
        f"produce-to-score-change latency at {args.rate:g} events/s over {result.latency_events:,} "
        f"events: p50 {result.latency_p50_ms:.0f} ms, p99 {result.latency_p99_ms:.0f} ms"
    )
    print(
        f"one faust hop (forward each event) at {args.rate:g} events/s: "
        f"p50 {result.hop_p50_ms:.0f} ms, p99 {result.hop_p99_ms:.0f} ms"
    )
    return {"step": "kafka", **vars(result)}


if __name__ == "__main__":
    main()
