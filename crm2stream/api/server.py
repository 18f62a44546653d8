"""``crm2stream serve``: the embedded engine and the HTTP API in one process."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import uvicorn

from crm2stream.api.app import ApiOptions, Host, create_app
from crm2stream.api.hub import EngineHost
from crm2stream.engine.embedded import EmbeddedEngine
from crm2stream.settings import Settings
from crm2stream.topology import load_topology

log = logging.getLogger("crm2stream.api")

#: The read model's directory, inside the data directory.
READ_MODEL_DIR = "read-model"


def open_engine(settings: Settings, data_dir: Path) -> EmbeddedEngine:
    """The engine as a server runs it: table topics published within ``publish_seconds``;
    the facts loaded when the first events arrive (the read model needs only the topics)."""
    return EmbeddedEngine(
        data_dir,
        settings.core_config(),
        batch_size=settings.batch_size,
        checkpoint_events=settings.checkpoint_events,
        cache_bytes=settings.cache_mb << 20,
        checkpoint_seconds=min(settings.checkpoint_seconds, settings.publish_seconds),
        followed=True,
        defer_load=True,
    )


def build(
    settings: Settings,
    data_dir: Path,
    background: Sequence[Callable[[Host], Awaitable[None]]] = (),
    kafka: bool = False,
) -> tuple[Host, uvicorn.Server]:
    """The server; over the embedded engine in ``data_dir``, or with ``kafka`` over the
    distributed engine's topics at ``settings.broker``."""
    host: Host
    if kafka:
        from crm2stream.kafka.api import KafkaHost  # Kafka's clients only when asked for
        from crm2stream.kafka.names import Names

        names = Names.of(settings.namespace, settings.app_version)
        host = KafkaHost(settings.broker, names, settings.core_config())
    else:
        host = EngineHost(
            lambda: open_engine(settings, data_dir),
            max_batch_lines=settings.batch_size,
            max_queued_lines=4 * settings.batch_size,
        )
    options = ApiOptions(
        token=settings.api_token,
        max_body_bytes=settings.api_max_body_bytes,
        batch_lines=settings.batch_size,
        read_model_dir=data_dir / READ_MODEL_DIR,
    )
    app = create_app(host, settings.core_config(), load_topology(), options, background)
    # Live streams never end by themselves: on shutdown they get a moment, then are closed.
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    return host, _Server(config)


class _Server(uvicorn.Server):
    """uvicorn's server, remembering the signal that stopped it. uvicorn raises that
    signal again once it has shut down, but a Ctrl-C raised again inside ``asyncio.run``
    only cancels the main task, which a shutdown still awaiting can absorb: then ``serve``
    raises the KeyboardInterrupt itself, so Ctrl-C always ends the command as Ctrl-C."""

    stopped_by: int | None = None

    def handle_exit(self, sig: int, frame: object) -> None:
        self.stopped_by = self.stopped_by or sig
        super().handle_exit(sig, frame)  # type: ignore[arg-type]


def serve(
    settings: Settings,
    data_dir: Path,
    host: str,
    port: int,
    on_ready: Callable[[str], None] | None = None,
    background: Sequence[Callable[[Host], Awaitable[None]]] = (),
    kafka: bool = False,
) -> None:
    """Serve until interrupted; the engine publishes and checkpoints before it closes."""
    engine_host, server = build(settings, data_dir, background, kafka)
    engine_host.open()  # a data directory it cannot open is an error before any port opens
    server.config.host, server.config.port = host, port
    if on_ready is not None:
        _announce_when_started(server, on_ready)
    server.run()
    if engine_host.failure is not None:
        raise engine_host.failure
    if isinstance(server, _Server) and server.stopped_by == signal.SIGINT:
        raise KeyboardInterrupt


def bound_url(server: uvicorn.Server, timeout: float = 30.0) -> str | None:
    """The server's URL once it listens (None if it stopped or did not start in time):
    with port 0 the system picks the port."""
    deadline = time.monotonic() + timeout
    while not server.started:
        if server.should_exit or time.monotonic() > deadline:
            return None
        time.sleep(0.02)
    address = server.servers[0].sockets[0].getsockname()
    return f"http://{address[0]}:{address[1]}/"


def _announce_when_started(server: uvicorn.Server, on_ready: Callable[[str], None]) -> None:
    def watch() -> None:
        url = bound_url(server)
        if url is not None:
            on_ready(url)

    threading.Thread(target=watch, name="crm2stream-announce", daemon=True).start()
