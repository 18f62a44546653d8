"""``make bench``, scale step: how ingest and point reads change as the history grows.

The same generator at each size (by default 1,000,000 and 10,000,000 events over
1,000,000 identifiers and two years; each file generated once and cached under
``.bench/``), each ingested once into a fresh data directory by a process pinned to one
core. On the largest directory: one person's ``history`` (a command: its wall time and
peak RSS, and the wall time of starting Python and importing the command line alone;
then the read alone, in a process, ``bench.point_read``),
and ``GET /persons/{id}`` against ``serve`` (the request's latency; the time from its
start until its read model has read every topic and it answers; the server's peak RSS);
last, a ``replay`` of it in place (its time and peak RSS, and the rebuild's rate without the
digest the command prints, against the ingest's).
What the step reports is measured here; the targets it is read against are in
``docs/performance.md``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.memory import status_kib
from bench.run import WORK, dataset, run_once

TOKEN = "bench-token"
#: how long ``serve`` gets to catch up and answer ``GET /persons/{id}``: past it, the step
#: reports that it did not (``get_person_ms`` null) and stops the server
SERVE_SECONDS = 1200.0


def run(sizes: list[int], identifiers: int, days: int, env: dict[str, str]) -> dict[str, Any]:
    steps: list[dict[str, Any]] = []
    for events in sizes:
        source = dataset(events, identifiers, days)
        data = WORK / f"scale-{events}"
        shutil.rmtree(data, ignore_errors=True)
        cli = [sys.executable, "-m", "crm2stream.cli", "--data-dir", str(data)]
        seconds, rss = run_once(f"ingest {events:,}", [*cli, "ingest", str(source)], env)
        steps.append(
            {
                "events": events,
                "seconds": round(seconds, 2),
                "events_per_second": round(events / seconds),
                "peak_rss_mib": round(rss),
            }
        )
        print(
            f"scale: {events:>11,} events  {events / seconds:9,.0f} events/s  "
            f"{seconds:7.1f} s  peak RSS {rss:6.0f} MiB",
            flush=True,
        )
    largest = WORK / f"scale-{max(sizes)}"
    reads = _point_reads(largest, env)
    replay = _replay(largest, max(sizes), steps[-1]["seconds"], env)
    first, last = steps[0], steps[-1]
    summary = {
        "step": "scale",
        "identifiers": identifiers,
        "days": days,
        "ingest": steps,
        "rate_ratio": round(last["events_per_second"] / first["events_per_second"], 3),
        "rss_ratio": round(last["peak_rss_mib"] / first["peak_rss_mib"], 3),
        **reads,
        "replay": replay,
    }
    print(
        f"scale: events/s at {last['events']:,} vs {first['events']:,}: "
        f"{summary['rate_ratio']:.2f}x; peak RSS {summary['rss_ratio']:.2f}x"
    )
    return summary


def _replay(data: Path, events: int, ingest_seconds: float, env: dict[str, str]) -> dict[str, Any]:
    """``replay`` of the largest directory in place (last: it renumbers the topics),
    through ``bench.phases``: the command prints the tables' digest at its end, which
    reads every table, so the rebuild's rate is given without it."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.phases", str(data), "--replay"],
        capture_output=True,
        check=True,
        env=env,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, {0}),
    ).stdout
    total = re.search(r"^replay ([\d.]+) s, exit 0; RSS at most ([\d,]+) MiB$", out, re.M)
    digest = re.search(r"^digest: ([\d.]+) s", out, re.M)
    if total is None or digest is None:
        raise SystemExit(f"replay {events:,} failed: {out[-500:]}")
    seconds, rebuild = float(total[1]), float(total[1]) - float(digest[1])
    rss = int(total[2].replace(",", ""))
    print(
        f"scale: replay of {events:,} events in place: {seconds:.1f} s, of which the digest "
        f"{float(digest[1]):.1f} s; the rebuild {events / rebuild:,.0f} events/s "
        f"({ingest_seconds / rebuild:.2f}x the ingest's rate); peak RSS {rss:,} MiB"
    )
    return {
        "seconds": round(seconds, 2),
        "digest_seconds": float(digest[1]),
        "rebuild_events_per_second": round(events / rebuild),
        "rebuild_rate_vs_ingest": round(ingest_seconds / rebuild, 3),
        "peak_rss_mib": rss,
    }


def _busiest_person(data: Path, env: dict[str, str]) -> tuple[str, str]:
    """An identifier and the id of the person with the most members."""
    out = subprocess.run(
        [sys.executable, "-m", "crm2stream.cli", "--data-dir", str(data), "export", "identity"],
        capture_output=True,
        check=True,
        env=env,
    ).stdout
    counts: dict[str, int] = {}
    first: dict[str, str] = {}
    for line in out.splitlines():
        row = orjson.loads(line)
        counts[row["person_id"]] = counts.get(row["person_id"], 0) + 1
        first.setdefault(row["person_id"], row["identifier"])
    person = max(counts, key=lambda p: (counts[p], p))
    return first[person], person


def _caught_up(client: httpx.Client) -> bool:
    """Whether the server's read model has read every topic to its end (its metrics)."""
    lags = [
        float(line.split()[-1])
        for line in client.get("/metrics").text.splitlines()
        if line.startswith('crm2stream_subscriber_lag_records{subscriber="read-model"')
    ]
    return bool(lags) and not any(lags)


def _point_reads(data: Path, env: dict[str, str]) -> dict[str, Any]:
    who, person = _busiest_person(data, env)
    cli = [sys.executable, "-m", "crm2stream.cli", "--data-dir", str(data)]
    seconds, rss = run_once("history", [*cli, "history", who], env)
    # what of it is the interpreter's start and the command's imports (pydantic, models)
    imports, _ = run_once("imports", [sys.executable, "-c", "import crm2stream.cli"], env)
    print(
        f"scale: history of {who}: {seconds * 1000:,.0f} ms, peak RSS {rss:,.0f} MiB; "
        f"starting Python and importing the command line alone: {imports * 1000:,.0f} ms"
    )
    # the read alone, inside a process that has started and imported already
    read = orjson.loads(
        subprocess.run(
            [sys.executable, "-m", "bench.point_read", str(data), who],
            capture_output=True,
            check=True,
            env=env,
            preexec_fn=lambda: os.sched_setaffinity(0, {0}),
        ).stdout
    )
    print(
        f"scale: the same read inside a process: {read['first_read_ms']:,.1f} ms on a store "
        f"just opened, then {read['read_ms']:,.1f} ms ({read['events']} events)"
    )
    report: dict[str, Any] = {
        "history_seconds": round(seconds, 3),
        "history_peak_rss_mib": round(rss),
        "cli_import_seconds": round(imports, 3),
        "history_read": read,
    }
    # the first start builds the read model from the topics, the second resumes it
    for prefix in ("serve", "serve_again"):
        answered, ready, latency, hwm = _serve(cli, env, person)
        if latency is None or ready is None:
            print(
                f"scale: {prefix} did not answer GET /persons/{person} within "
                f"{SERVE_SECONDS:.0f} s (peak RSS {hwm:,.0f} MiB by then)"
            )
        else:
            print(
                f"scale: {prefix}: GET /persons/{person}: {latency * 1000:,.1f} ms (median "
                f"of 5); first answered {answered:.1f} s after its start, its read model "
                f"caught up at {ready:.1f} s; peak RSS {hwm:,.0f} MiB"
            )
        if prefix == "serve":
            report["get_person_ms"] = None if latency is None else round(latency * 1000, 1)
        report[f"{prefix}_first_answer_seconds"] = None if answered is None else round(answered, 1)
        report[f"{prefix}_ready_seconds"] = None if ready is None else round(ready, 1)
        report[f"{prefix}_peak_rss_mib"] = round(hwm)
    return report


def _serve(
    cli: list[str], env: dict[str, str], person: str
) -> tuple[float | None, float | None, float | None, float]:
    """Start ``serve`` pinned to one core and ask it for a person until its read model has
    caught up: when it first answered, when it caught up, the median latency of five
    requests after that (seconds; None: not within ``SERVE_SECONDS``) and its peak RSS
    (MiB)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    server = subprocess.Popen(
        [*cli, "serve", "--port", str(port)],
        env={**env, "CRM2STREAM_API_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=lambda: os.sched_setaffinity(0, {0}),
    )
    headers = {"authorization": f"Bearer {TOKEN}"}
    base = f"http://127.0.0.1:{port}"
    answered: float | None = None  # first, before the read model caught up
    ready: float | None = None
    timings = []
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
            while ready is None and time.perf_counter() - started < SERVE_SECONDS:
                try:  # until the read model has read every topic and knows the person
                    caught_up = _caught_up(client)
                    if client.get(f"/persons/{person}").status_code == 200:
                        answered = answered or time.perf_counter() - started
                        ready = time.perf_counter() - started if caught_up else None
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    raise SystemExit("serve exited before answering")
                time.sleep(0.2)
            for _ in range(5 if ready is not None else 0):
                begun = time.perf_counter()
                assert client.get(f"/persons/{person}").status_code == 200
                timings.append(time.perf_counter() - begun)
        hwm = status_kib("VmHWM", server.pid)
    finally:
        server.terminate()
        server.wait()
    latency = sorted(timings)[len(timings) // 2] if timings else None
    return answered, ready, latency, hwm / 1024


def main() -> None:
    """The scale step alone: ``python -m bench.scale``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", default="1000000,10000000")
    parser.add_argument("--identifiers", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument(
        "--point-reads",
        type=Path,
        metavar="DIR",
        help="only the point reads, on a data directory an earlier run ingested",
    )
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM2STREAM_")}
    env["CRM2STREAM_ID_KEY"] = "bench"
    if args.point_reads is not None:
        print(orjson.dumps(_point_reads(args.point_reads, env)).decode())
        return
    sizes = [int(size) for size in args.events.split(",") if size]
    report = run(sizes, args.identifiers, args.days, env)
    (WORK / "scale.json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
