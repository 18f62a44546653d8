"""The HTTP API: ingest, the single customer view, the leaderboard, live topic streams
(Server-Sent Events), Prometheus metrics and the dashboard.

The API is a subscriber like any other: its answers come from a read model built from the
output topics (``readmodel``), and its streams read the topics themselves.
"""

import asyncio
import contextlib
import itertools
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Annotated, Any, Protocol

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ValidationError
from sse_starlette import EventSourceResponse

from crm2stream.api import ingest
from crm2stream.api.access import Access
from crm2stream.api.ingest import NDJSON, IngestAnswer
from crm2stream.api.metrics import Metrics, Positions
from crm2stream.api.readmodel import FOLLOWED, ReadModel
from crm2stream.core.config import CoreConfig
from crm2stream.core.events import parse_identifier_key
from crm2stream.engine.host import EngineUnavailable, Outcome
from crm2stream.engine.wake import woken
from crm2stream.topology import Topology

#: Records read from the store per round by a stream.
READ_CHUNK = 1000
#: Records (or input lines) the read model takes of each topic per round; it applies
#: them on the event loop, between requests.
MODEL_CHUNK = 5000


class TopicInfo(BaseModel):
    name: str
    kind: str
    end: int


class Feed(Protocol):
    """The topics as the API reads them (the embedded store, or Kafka)."""

    def next_write(self) -> asyncio.Event: ...
    def end(self, topic: str) -> int: ...
    def topics_id(self) -> str | None:
        """Names the topics' numbering: the same id, the same records at the same offsets,
        so a read model kept from an earlier run may resume; None when it does not last
        beyond this process."""
        ...

    async def read(self, topic: str, start: int, limit: int) -> list[tuple[int, bytes]]: ...
    async def read_log(self, start: int, limit: int) -> tuple[int, list[bytes]]: ...


class Host(Protocol):
    """What the routes need of an engine: its topics and a way in for new events
    (``hub.EngineHost`` embedded, ``kafka.api.KafkaHost`` distributed)."""

    on_batch: Callable[[list[bytes], list[Outcome], float], None] | None
    failure: BaseException | None

    @property
    def feed(self) -> Feed: ...
    @property
    def running(self) -> bool: ...
    def open(self) -> None: ...
    def start(self, loop: asyncio.AbstractEventLoop) -> None: ...
    def stop(self) -> None: ...
    async def submit(
        self, lines: list[bytes], originals: dict[int, bytes] | None = None
    ) -> list[Outcome]:
        """Ingest lines; each one's outcome, in order. ``originals``: the bytes received of
        lines a log line could not hold as they were (by index), for the dead letters."""
        ...


class ApiOptions(BaseModel):
    token: str = ""
    max_body_bytes: int = 16 << 20
    #: events of a request handed to the engine at a time
    batch_lines: int = 50_000
    #: where the read model keeps its RocksDB (see ``readmodel``)
    read_model_dir: Path


def create_app(
    host: Host,
    cfg: CoreConfig,
    topology: Topology,
    options: ApiOptions,
    background: Sequence[Callable[[Host], Awaitable[None]]] = (),
) -> FastAPI:
    """The app; ``background`` tasks (a demo's player) run while it serves."""
    feed = host.feed
    model = ReadModel(cfg.currency, options.read_model_dir)
    metrics = Metrics()
    host.on_batch = metrics.batch
    streams: dict[str, dict[str, int]] = {"read-model": model.positions}
    stream_ids = itertools.count(1)
    topics = {name: "table" for name in topology.tables}
    topics |= {name: "stream" for name in topology.streams} | {topology.dlq: "dead-letters"}
    metrics.registry.register(
        Positions(
            lambda: {name: feed.end(name) for name in (*topics, "events")},
            lambda: {name: dict(p) for name, p in streams.items()},
            model.sizes,
        )
    )

    async def follow() -> None:
        """Keep the read model up to date with the topics and the input log. A failed round
        is logged and tried again: the read model lags, it never stops."""
        while True:
            written = feed.next_write()
            try:
                progressed = await catch_up()
            except Exception:
                logging.getLogger("crm2stream.api").exception("the read model failed to update")
                await asyncio.sleep(1)
                continue
            if not progressed:
                await woken(written, 5)

    async def catch_up() -> bool:
        progressed = False
        for topic in FOLLOWED:
            records = await feed.read(topic, model.positions[topic], MODEL_CHUNK)
            if records:
                model.apply(topic, records)
                progressed = True
        start, lines = await feed.read_log(model.positions["events"], MODEL_CHUNK)
        if lines:
            model.apply_log(start, lines)
            progressed = True
        return progressed

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(host.start, asyncio.get_running_loop())
        try:
            ends = {name: feed.end(name) for name in model.positions}
            await asyncio.to_thread(model.open, feed.topics_id(), ends)
        except BaseException:
            await asyncio.to_thread(model.close)
            await asyncio.to_thread(host.stop)
            raise
        tasks = [asyncio.create_task(follow())]
        tasks += [asyncio.create_task(_logged(task(host))) for task in background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:
                await asyncio.to_thread(host.stop)
            finally:
                await asyncio.to_thread(model.close)

    def authorised(request: Request) -> None:
        """With a token set, every route but the public ones needs it (see ``access``)."""
        if not access.granted(request):
            raise HTTPException(
                401, "a valid API token is required", {"WWW-Authenticate": "Bearer"}
            )

    access = Access(options.token)
    # The spec is served by a route of ours, behind the token; no /docs or /redoc (their
    # pages load scripts from a CDN).
    app = FastAPI(
        title="crm2stream",
        summary="Social CRM as live tables: ingest events, look people up, follow topics.",
        version="1",
        lifespan=lifespan,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    guarded = [Depends(authorised)]

    def current() -> None:
        """Read routes answer from the read model; once the engine failed, nothing new
        reaches it, and an answer would be stale without saying so."""
        if host.failure is not None:
            raise HTTPException(
                503, f"the engine has stopped ({host.failure}): answers would be stale"
            )

    reading = [*guarded, Depends(current)]

    @app.post(
        "/events",
        dependencies=guarded,
        response_model=IngestAnswer,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    NDJSON: {"schema": {"type": "string"}},
                    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                },
            }
        },
        responses={
            400: {"description": "no events in the body, or a body that is not one JSON array"},
            413: {"description": "request body over the size limit"},
            415: {"description": "neither NDJSON nor a JSON array"},
            503: {"description": "the engine is not running, or too much is queued"},
        },
    )
    async def post_events(request: Request) -> IngestAnswer:
        """Ingest events as NDJSON (one per line) or as a JSON array, a batch at a time as
        the body arrives. Every event gets its own outcome, and a bad one never fails its
        neighbours; the answer lists the events not accepted."""
        return await ingest.take(request, host.submit, options.max_body_bytes, options.batch_lines)

    @app.get("/persons/{person_id}", dependencies=reading)
    async def get_person(person_id: str) -> dict[str, Any]:
        """The single customer view of a person."""
        view = model.person(person_id)
        if view is None:
            raise HTTPException(404, f"no person {person_id}")
        return view

    @app.get("/identities/{kind}/{value}", dependencies=reading)
    async def get_identity(kind: str, value: str) -> dict[str, Any]:
        """The single customer view of the person an identifier belongs to now (the value
        is normalised as in events: a phone's spaces and dashes do not matter)."""
        try:
            key = parse_identifier_key(f"{kind}:{value}").key
        except (ValueError, ValidationError) as exc:
            raise HTTPException(422, f"not an identifier: {kind}:{value}") from exc
        person_id = model.person_of(key)
        view = None if person_id is None else model.person(person_id)
        if view is None:
            raise HTTPException(404, f"no identifier {key}")
        return view

    @app.get("/scores", dependencies=reading)
    async def get_scores(
        top: Annotated[int, Query(ge=1, le=1000)] = 10,
        tier: Annotated[str | None, Query(pattern=_tier_pattern(cfg))] = None,
    ) -> dict[str, Any]:
        """The leaderboard: persons by composite score, best first; the tier distribution."""
        return {"top": model.leaderboard(top, tier), "tiers": model.tiers()}

    @app.get("/topics", dependencies=reading)
    async def get_topics() -> list[TopicInfo]:
        """Every output topic, its kind and its end offset; ``events`` is the input log (its
        end: the events received so far)."""
        listed = [TopicInfo(name="events", kind="input", end=feed.end("events"))]
        return listed + [TopicInfo(name=n, kind=k, end=feed.end(n)) for n, k in topics.items()]

    @app.get(
        "/topics/{name}/stream",
        dependencies=reading,
        response_class=Response,
        responses={200: {"content": {"text/event-stream": {}}}, 404: {}},
    )
    async def stream_topic(
        name: str,
        from_: Annotated[int | None, Query(alias="from", ge=0, le=MAX_OFFSET)] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> EventSourceResponse:
        """Follow a topic live as Server-Sent Events from an offset (default: from now
        on); each event's id is the record's offset, so ``Last-Event-ID`` resumes after
        it (ASCII digits, an offset; anything else is a 400)."""
        if name not in topics:
            raise HTTPException(404, f"no topic {name}; topics: {', '.join(topics)}")
        start = feed.end(name) if from_ is None else from_
        if last_event_id is not None:
            start = _resume_offset(last_event_id)
        positions = {name: start}
        subscriber = f"sse-{next(stream_ids)}"
        streams[subscriber] = positions
        return EventSourceResponse(
            _records(
                feed.read, feed.next_write, name, positions, lambda: streams.pop(subscriber, None)
            ),
            ping=15,
        )

    @app.get("/healthz", responses={503: {"description": "the engine is not running"}})
    async def healthz(request: Request, response: Response) -> dict[str, Any]:
        """Liveness for a supervisor's probes: 200 while the engine runs, 503 once it
        stopped. Public; with a token set, only a caller who presents it also learns why
        the engine stopped and where the log ends."""
        running = host.running
        response.status_code = 200 if running else 503
        answer: dict[str, Any] = {"status": "ok" if running else "stopped"}
        if access.granted(request):
            answer["log_end"] = feed.end("events")
            if not running:
                answer["error"] = f"the engine is not running: {host.failure or 'stopped'}"
        return answer

    @app.get("/openapi.json", dependencies=guarded, include_in_schema=False)
    async def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/metrics", response_class=Response)
    async def get_metrics() -> Response:
        """Prometheus exposition (open even when an API token is set)."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def dashboard() -> HTMLResponse:
        """The page shell (public: it holds no data; it reads everything with the token
        given to it as ``?access_token=``)."""
        return HTMLResponse(files("crm2stream.api").joinpath("dashboard.html").read_text("utf-8"))

    app.state.model = model
    app.state.metrics = metrics
    return app


async def _records(
    read: Callable[[str, int, int], Any],
    next_write: Callable[[], asyncio.Event],
    topic: str,
    positions: dict[str, int],
    done: Callable[[], Any],
) -> AsyncIterator[bytes]:
    """The records of a topic as Server-Sent Events, a chunk of them per write to the
    socket; each event's id is the record's offset. Records are single-line JSON."""
    name = topic.encode()
    try:
        while True:
            written = next_write()
            records = await read(topic, positions[topic], READ_CHUNK)
            if records:
                yield b"".join(
                    b"id: %d\nevent: %s\ndata: %s\n\n" % (offset, name, record)
                    for offset, record in records
                )
                positions[topic] = records[-1][0] + 1
                continue
            await woken(written, 15)
    finally:
        done()


async def _logged(work: Awaitable[None]) -> None:
    try:
        await work
    except (asyncio.CancelledError, EngineUnavailable):
        raise
    except Exception:
        logging.getLogger("crm2stream.api").exception("a background task failed")


def _tier_pattern(cfg: CoreConfig) -> str:
    return "^(" + "|".join(tier.name for tier in cfg.tiers) + ")$"


#: The highest offset a stream can resume from (Kafka's offsets are signed 64-bit).
MAX_OFFSET = (1 << 63) - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


def _resume_offset(last_event_id: str) -> int:
    """The offset after a ``Last-Event-ID``: ASCII digits naming an offset, else a 400."""
    if _DIGITS.fullmatch(last_event_id) is None or int(last_event_id) >= MAX_OFFSET:
        raise HTTPException(400, "Last-Event-ID must be a record offset (ASCII digits)")
    return int(last_event_id) + 1
