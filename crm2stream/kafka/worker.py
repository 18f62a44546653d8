"""``crm2stream worker``: the distributed engine, a faust-streaming app on Apache Kafka.

Two stages:

- the ``intake`` reads the input topic (keyed by actor, so scaled by its partitions across
  workers) in a consumer group of its own, validates every record from bytes and sends
  one chunk per partition per batch to the accepted topic (see ``intake`` for why it reads
  whole fetches rather than a faust stream, and ``chunks``);
- the ``tables`` agent reads the accepted topic's single partition with ``take_events``,
  so exactly one worker at a time holds the tables (see ``stage`` for why). It hands its
  batches to the stage's task and moves on (an agent that waits holds up faust's
  consumer). The task applies everything queued at once and writes its dead letters and
  score changes, confirmed by the broker. Every ``publish_seconds`` (and when the worker
  stops) the stage commits: the table topics' records of what changed are sent and, once
  the broker has confirmed them, one changelog record of state and position. The commit
  writes while the next batches are applied; the one after waits for it.

The stage's host (``stage_host``) says how a batch's outputs and a commit are written,
and why nothing is lost between commits.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, cast

import faust
from faust.types import TP
from faust.web import Request, Response, View

from crm2stream.kafka.admin import (
    MAX_CHUNK_MESSAGE,
    admin_client,
    bootstrap,
    create_missing,
    desired,
)
from crm2stream.kafka.intake import Intake
from crm2stream.kafka.metrics import WorkerMetrics
from crm2stream.kafka.names import Names
from crm2stream.kafka.stage_host import StageHost
from crm2stream.settings import Settings

log = logging.getLogger("crm2stream.worker")

#: chunks per table batch, and how long it waits for more
STAGE_MAX, STAGE_WITHIN = 64, 0.01


def make_app(
    settings: Settings,
    names: Names,
    datadir: Path,
    web_port: int = 6066,
    web_host: str = "127.0.0.1",
) -> faust.App:
    app = faust.App(
        names.app_id,
        datadir=str(datadir),  # faust's own files; the tables live in the changelog
        broker=f"kafka://{bootstrap(settings.broker)}",
        key_serializer="raw",
        value_serializer="raw",
        web_port=web_port,
        web_host=web_host,
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_max_request_size=MAX_CHUNK_MESSAGE,
        broker_commit_interval=1.0,
        stream_wait_empty=False,
        web_in_thread=False,
    )
    metrics = WorkerMetrics(app, names)
    host = StageHost(settings, names, metrics)
    intake = Intake(settings.broker, names, settings.core_config(), metrics)
    metrics.consumers.append(lambda: intake.consumer)
    accepted = app.topic(names.accepted, partitions=1)

    async def start_intake() -> None:
        intake.start()

    app.task(start_intake)  # once the worker is up

    @app.agent(accepted, name="tables")
    async def tables(stream: faust.StreamT[bytes]) -> None:
        async for events in cast(faust.Stream[bytes], stream).take_events(
            STAGE_MAX, within=STAGE_WITHIN
        ):
            for event in events:
                metrics.seen(event.message.tp, event.message.offset)
            await host.offer([(e.message.offset, e.message.value or b"") for e in events])

    # faust's signals call receivers as (sender, *arguments, signal=...); their declared
    # receiver type does not admit a coroutine function, which they do take.
    async def on_rebalance(sender: Any, partitions: set[TP], **kwargs: Any) -> None:
        host.rebalanced(partitions)

    async def on_shutdown(sender: Any, **kwargs: Any) -> None:
        await intake.stop()
        await host.stop()

    app.on_partitions_revoked.connect(on_rebalance)  # type: ignore[arg-type]
    app.on_partitions_assigned.connect(on_rebalance)  # type: ignore[arg-type]
    app.on_before_shutdown.connect(on_shutdown)  # type: ignore[arg-type]

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            body, content_type = metrics.render()
            return self.bytes(body, content_type=content_type)

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            health = metrics.health()
            return self.json(health, status=200 if health["healthy"] else 503)

    host.owns = lambda: any(tp.topic == names.accepted for tp in app.consumer.assignment())
    app.crm2stream_host = host  # type: ignore[attr-defined]
    return app


def run_worker(
    settings: Settings, names: Names, web_port: int, web_host: str, loglevel: str = "info"
) -> Any:
    """Run a worker until it is stopped (SIGTERM or Ctrl-C). Creates the topics it needs
    that are missing (``topology apply`` also reconfigures the existing ones)."""
    with admin_client(settings.broker) as client:
        create_missing(client, desired(names))
    with tempfile.TemporaryDirectory(prefix="crm2stream-worker-") as datadir:
        app = make_app(settings, names, Path(datadir), web_port, web_host)
        logging.getLogger("kafka").setLevel(logging.WARNING)  # the changelog reader's chatter
        worker = faust.Worker(app, loglevel=loglevel, quiet=True)
        try:
            return worker.execute_from_commandline()
        finally:
            app.crm2stream_host.close()  # type: ignore[attr-defined]
