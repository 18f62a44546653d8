"""The command line of the distributed engine: ``topology``, ``produce``, ``worker``, and
``export``, ``digest`` and ``replay`` with ``--broker``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from crm2stream.cli import as_of_day
from crm2stream.engine.results import EngineError
from crm2stream.kafka import admin
from crm2stream.kafka.names import Names
from crm2stream.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    broker = getattr(args, "broker", None) or settings.broker
    settings = settings.model_copy(update={"broker": broker})
    names = Names.of(settings.namespace, settings.app_version)
    if args.command == "topology":
        return topology(args.action, args.broker, names)
    if args.command == "produce":
        return produce(args.files, broker, names)
    if args.command == "worker":
        from crm2stream.kafka.worker import run_worker  # faust only for a worker

        settings.require_id_key("worker")

        run_worker(settings, names, args.port, args.host, args.loglevel)
        return 0
    from crm2stream.kafka import reader

    if args.command == "export":
        for row in reader.export(settings, names, args.table, as_of_day(args.as_of)):
            sys.stdout.buffer.write(orjson.dumps(row) + b"\n")
        return 0
    if args.command == "digest":
        print(reader.digest(settings, names, as_of_day(args.as_of)))
        return 0
    if args.command == "replay":
        from crm2stream.kafka.replay import replay

        version = args.version or settings.app_version + 1
        done = replay(settings, names, version, _millis(args.from_time))
        print(done.digest)
        print(
            f"crm2stream: version {done.version} caught up ({done.events} input records); "
            f"start its workers with CRM2STREAM_APP_VERSION={done.version}",
            file=sys.stderr,
        )
        return 0
    raise EngineError(f"{args.command} does not take --broker")


def _millis(text: str | None) -> int | None:
    """--from-time: an RFC 3339 timestamp with offset, or a day (its UTC midnight)."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise EngineError(f"--from-time {text!r} is not a timestamp or day") from exc
    if moment.tzinfo is None:
        if "T" in text.upper():
            raise EngineError(f"--from-time {text!r} needs an offset (e.g. Z)")
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def topology(action: str, broker: str | None, names: Names) -> int:
    """Print the topics the topology wants; against a broker, what differs (``show``) or
    make it match (``apply``). A difference ``apply`` cannot fix is an error."""
    specs = admin.desired(names)
    for spec in specs:
        config = ", ".join(f"{k}={v}" for k, v in sorted(spec.config.items()))
        print(f"{spec.name:34} {spec.role:12} {spec.partitions:3} partitions  {config}")
    if broker is None and action == "show":
        print("(give --broker to compare with a cluster)")
        return 0
    target = broker or Settings().broker
    try:
        with admin.admin_client(target) as client:
            changes = admin.plan(client, specs)
            for change in changes:
                label = "drift" if action == "show" else change.action
                print(f"{label}: {change.topic}: {change.detail}")
            if action == "apply" and changes:
                admin.apply(client, [c for c in changes if c.fixable])
                changes = [c for c in admin.plan(client, specs) if c.fixable] + [
                    c for c in changes if not c.fixable
                ]
    except admin.BrokerError as exc:
        raise EngineError(str(exc)) from exc
    conflicts = [c for c in changes if not c.fixable]
    if conflicts:
        raise EngineError(f"{len(conflicts)} topic(s) differ in ways apply cannot fix: see above")
    if action == "apply" and changes:
        raise EngineError(f"{len(changes)} change(s) did not take: see above")
    print(f"{target}: {'in sync' if not changes else f'{len(changes)} difference(s)'}")
    return 0


def produce(files: Sequence[str], broker: str, names: Names) -> int:
    """Send the files' lines to the input topic; one JSON summary line. Exit 1 when the
    broker did not confirm every line."""
    from crm2stream.kafka.produce import produce as send

    for name in files:
        if name != "-" and not Path(name).is_file():
            raise EngineError(f"cannot read {name}: no such file")

    def lines() -> Iterable[bytes]:
        for name in files:
            if name == "-":
                yield from sys.stdin.buffer
            else:
                with Path(name).open("rb") as handle:
                    yield from handle

    try:
        delivery = send(broker, names.input, lines())
    except admin.BrokerError as exc:
        raise EngineError(str(exc)) from exc
    summary: dict[str, Any] = delivery.summary(names.input)
    print(orjson.dumps(summary).decode())
    return 1 if delivery.failed else 0
