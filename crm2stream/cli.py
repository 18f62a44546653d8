"""The ``crm2stream`` command line."""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import orjson
from pydantic import ValidationError

from crm2stream.core.events import parse_day, parse_identifier_key
from crm2stream.engine.core import CorruptRecord
from crm2stream.engine.embedded import EmbeddedEngine
from crm2stream.engine.results import Counts, EngineError
from crm2stream.engine.segments import CorruptSegment
from crm2stream.settings import Settings
from crm2stream.topology import load_topology

#: settings whose values an error message never repeats
SECRET_SETTINGS = ("api_token", "id_key")


class UsageError(Exception):
    """Bad input on the command line: a message and exit code 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm2stream",
        description="Event-sourced stream processor for social CRM.",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="state and log directory (env CRM2STREAM_DATA_DIR, default ./crm2stream-data)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    ingest = commands.add_parser("ingest", help="append NDJSON events to the log and process them")
    ingest.add_argument("files", nargs="+", metavar="FILE", help="NDJSON file, or - for stdin")

    export = commands.add_parser("export", help="print a table as NDJSON, sorted by key")
    export.add_argument("table", choices=load_topology().exportable, metavar="TABLE")
    export.add_argument("--as-of", metavar="DAY", help="UTC day (or timestamp) to travel to")
    export.add_argument("--broker", help="read the distributed engine's topics at kafka://...")

    history = commands.add_parser("history", help="a person's events in event-time order")
    history.add_argument("who", metavar="IDENTIFIER_OR_PERSON_ID", help="kind:value or p_...")

    digest = commands.add_parser("digest", help="hex digest of the state tables")
    digest.add_argument("--as-of", metavar="DAY")
    digest.add_argument("--broker", help="read the distributed engine's topics at kafka://...")

    replay = commands.add_parser("replay", help="rebuild every table from the log")
    replay.add_argument("--into", type=Path, metavar="DIR", help="a new data directory")
    replay.add_argument(
        "--broker", help="rebuild the distributed engine's tables as a new application version"
    )
    start = replay.add_mutually_exclusive_group()
    start.add_argument("--from-beginning", action="store_true", help="(the default)")
    start.add_argument("--from-time", metavar="T", help="from the input records since T")
    replay.add_argument("--version", type=int, help="the new version (the current one + 1)")

    topology = commands.add_parser(
        "topology", help="the Kafka topics of topology.yaml: the plan and any drift, or apply it"
    )
    topology.add_argument("action", choices=["show", "apply"], metavar="show|apply")
    topology.add_argument("--broker", help="kafka://host:port (env CRM2STREAM_BROKER)")

    produce = commands.add_parser(
        "produce", help="publish NDJSON events to the Kafka input topic, keyed by actor"
    )
    produce.add_argument("files", nargs="+", metavar="FILE", help="NDJSON file, or - for stdin")
    produce.add_argument("--broker", help="kafka://host:port (env CRM2STREAM_BROKER)")

    worker = commands.add_parser("worker", help="a faust worker of the distributed engine")
    worker.add_argument("--broker", help="kafka://host:port (env CRM2STREAM_BROKER)")
    worker.add_argument("--host", default="127.0.0.1", help="metrics address (127.0.0.1)")
    worker.add_argument("--port", type=int, default=6066, help="metrics port (6066)")
    worker.add_argument("--loglevel", default="info")

    serve = commands.add_parser("serve", help="the HTTP API and live dashboard over the engine")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8765, help="port (8765; 0: any free one)")
    serve.add_argument(
        "--broker",
        help="serve the distributed engine's topics at kafka://... (POST /events produces)",
    )

    demo = commands.add_parser(
        "demo", help="play a seeded trial campaign into the engine while serving the dashboard"
    )
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8765)
    demo.add_argument("--rate", type=float, default=100.0, help="events per second (100)")
    demo.add_argument("--events", type=int, default=20_000, help="events in all (20000)")
    demo.add_argument("--people", type=int, default=1000, help="community members (1000)")
    demo.add_argument("--seed", type=int, default=2026)
    return parser


def _open(
    settings: Settings, data_dir: Path, *, load: bool = True, defer_load: bool = False
) -> EmbeddedEngine:
    return EmbeddedEngine(
        data_dir,
        settings.core_config(),
        batch_size=settings.batch_size,
        checkpoint_events=settings.checkpoint_events,
        cache_bytes=settings.cache_mb << 20,
        checkpoint_seconds=settings.checkpoint_seconds,
        load=load,
        defer_load=defer_load,
    )


def _print_rows(rows: Iterable[dict[str, Any]]) -> None:
    out = sys.stdout.buffer
    for row in rows:
        out.write(orjson.dumps(row))
        out.write(b"\n")
    out.flush()


def as_of_day(text: str | None) -> int | None:
    """--as-of: a UTC day or timestamp, as days since the epoch."""
    if text is None:
        return None
    try:
        return parse_day(text)
    except ValueError as exc:
        raise UsageError(f"--as-of {text!r} is not a day (YYYY-MM-DD) or timestamp") from exc


def _ingest(engine: EmbeddedEngine, files: Sequence[str]) -> None:
    paths = [Path(name) for name in files if name != "-"]
    for path in paths:
        if not path.is_file():
            raise UsageError(f"cannot read {path}: no such file")
    total = Counts()
    for name in files:
        if name == "-":
            total.add(engine.ingest_stream(sys.stdin.buffer))
        else:
            total.add(engine.ingest_file(Path(name)))
    print(orjson.dumps(total.as_dict()).decode())


def _members(engine: EmbeddedEngine, who: str) -> set[str]:
    if not who.startswith("p_"):
        try:
            who = parse_identifier_key(who).key
        except (ValueError, ValidationError) as exc:
            raise UsageError(f"{who!r} is neither kind:value nor a person id: {exc}") from exc
    members = engine.members(who)
    if members is None:
        raise UsageError(f"no {'person' if who.startswith('p_') else 'identifier'} {who}")
    return members


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    """The demo plays into a fresh data directory (a temporary one unless --data-dir is
    given), so the same seed always shows the same campaign."""
    import tempfile
    from functools import partial

    from crm2stream.api.server import serve
    from crm2stream.demo import Story, play

    if args.data_dir is not None and args.data_dir.exists() and any(args.data_dir.iterdir()):
        raise UsageError(f"--data-dir {args.data_dir} is not empty: the demo needs a fresh one")
    story = Story(people=args.people, events=args.events, seed=args.seed)
    if not settings.id_key:  # a key of its own, never the empty one, even for made-up people
        settings = settings.model_copy(update={"id_key": secrets.token_hex(16)})
        if args.data_dir is not None:
            print(f"crm2stream demo: person ids keyed with CRM2STREAM_ID_KEY={settings.id_key}")
    player = partial(play, story=story, rate=args.rate)
    # uvicorn stops gracefully on SIGTERM, then raises it again: by default that ends the
    # process there and then, leaving the scratch directory behind. Raised as an exit,
    # the directory is removed on the way out (the exit status is still 128 + 15).
    signal.signal(signal.SIGTERM, _exit_on_signal)
    with tempfile.TemporaryDirectory(prefix="crm2stream-demo-") as scratch:
        data_dir = args.data_dir or Path(scratch)
        print(f"crm2stream demo: {story.events} events at {args.rate:g}/s into {data_dir}")
        serve(settings, data_dir, args.host, args.port, on_ready=_print_url, background=[player])
    return 0


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _print_url(url: str) -> None:
    print(f"crm2stream: serving the API and dashboard at {url}", flush=True)


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"CRM2STREAM_{name.upper()}"
            + ("" if name in SECRET_SETTINGS else f"={e['input']!r}")
            + f": {e['msg']}"
            for e in exc.errors(include_url=False)
            for name in ["_".join(map(str, e["loc"]))]
        )
        raise UsageError(f"bad setting: {problems}") from None
    data_dir = args.data_dir or settings.data_dir
    if args.command == "serve":
        from crm2stream.api.server import serve  # the HTTP stack only when serving

        if args.broker:
            settings = settings.model_copy(update={"broker": args.broker})
        settings.require_id_key("serve")
        kafka = bool(args.broker)
        serve(settings, data_dir, args.host, args.port, on_ready=_print_url, kafka=kafka)
        return 0
    if args.command == "demo":
        return _demo(args, settings)
    if args.command in ("topology", "produce", "worker") or getattr(args, "broker", None):
        from crm2stream import kafka_cli  # Kafka's clients only when asked for

        return kafka_cli.run(args, settings)
    into = args.into if args.command == "replay" else None
    if into is not None and into.exists() and any(into.iterdir()):
        raise UsageError(f"--into {into} exists and is not empty")
    # one person's history reads only that person's keys: asked by an identifier, always;
    # by a person id, when the facts may stay in the store (``EmbeddedEngine.members``)
    point_read = args.command == "history" and not args.who.startswith("p_")
    load = args.command != "replay" and not point_read
    with _open(settings, data_dir, load=load, defer_load=args.command == "history") as engine:
        if point_read and not engine.indexed:
            engine.load()  # a directory of an older version: its indexes are built first
        if args.command == "ingest":
            _ingest(engine, args.files)
        elif args.command == "export":
            _print_rows(engine.export(args.table, as_of_day(args.as_of)))
        elif args.command == "digest":
            print(engine.digest(as_of_day(args.as_of)))
        elif args.command == "history":
            _print_rows(engine.history(_members(engine, args.who)))
        elif args.command == "replay":
            if args.into is None:
                engine.replay_in_place()
                print(engine.digest())
            else:
                with _open(settings, args.into) as target:
                    engine.replay_into(target)
                    print(target.digest())
    return 0


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="crm2stream: %(message)s")
    try:
        code = run(argv)
    except (UsageError, EngineError) as exc:
        print(f"crm2stream: error: {exc}", file=sys.stderr)
        code = 2
    except (CorruptRecord, CorruptSegment) as exc:
        print(f"crm2stream: error: {exc}", file=sys.stderr)
        print(
            "crm2stream: the data directory's checkpoint cannot be read; if a later version"
            " wrote it, `crm2stream replay` rebuilds its tables from its log",
            file=sys.stderr,
        )
        code = 2
    except BrokenPipeError:
        code = 0
    except KeyboardInterrupt:
        code = 130  # Ctrl-C: a server has stopped cleanly by now
    _exit(code)


def _exit(code: int) -> NoReturn:
    """Leave without tearing down the in-memory state: the data directory is closed by
    now, and freeing millions of facts one by one would take seconds."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    main()
