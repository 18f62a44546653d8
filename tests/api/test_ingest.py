"""POST /events as careless and hostile clients use it: every event its own outcome, a JSON
array judged element by element as NDJSON lines are, media types as HTTP means them, and
a body of a million lines that costs one batch of memory and holds nobody up."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from crm2stream.api.ingest import MAX_LISTED, LineBatches
from crm2stream.engine.embedded import EmbeddedEngine
from tests.api.conftest import Server, eventually, start, start_server
from tests.conformance import BAD_INPUT, CAMPAIGN
from tests.events import comment, line, purchase
from tests.harness import CFG

JSON = {"content-type": "application/json"}


def log_end(server: Server) -> int:
    return int({t["name"]: t["end"] for t in server.client.get("/topics").json()}["events"])


def dead_letters(server: Server, count: int) -> list[tuple[str, str]]:
    """(reason, original line) of the first ``count`` dead letters."""

    def read() -> list[dict[str, Any]] | None:
        records = server.app.state.model.recent["dlq"]
        return list(records) if len(records) >= count else None

    return [(r["reason"], r["line"]) for r in eventually(read)[:count]]


def test_every_event_gets_its_own_outcome_and_only_failures_are_listed(api: Server) -> None:
    good = CAMPAIGN[:20]
    batch = [*good[:10], BAD_INPUT["malformed_json"], *good[10:], good[0]]
    answer = api.post_events(batch).json()
    assert (answer["accepted"], answer["rejected"], answer["duplicates"]) == (20, 1, 1)
    assert answer["unlisted"] == 0
    [bad, again] = answer["results"]
    assert (bad["index"], bad["status"], bad["reason"]) == (10, "rejected", "malformed_json")
    assert (again["index"], again["status"], again["reason"]) == (21, "duplicate", "duplicate")


def test_blank_lines_are_skipped_and_a_body_without_events_is_a_400(api: Server) -> None:
    answer = api.post_events([b"", CAMPAIGN[5], b"  ", CAMPAIGN[6], b""]).json()
    assert answer["accepted"] == 2 and answer["results"] == []
    for body, headers in [(b"", {}), (b"\n \r\n", {}), (b"[]", JSON), (b" [ ] ", JSON)]:
        empty = api.client.post("/events", content=body, headers=headers)
        assert empty.status_code == 400 and "no events" in empty.json()["detail"], body
    assert log_end(api) == 2


def test_media_types_are_read_as_http_means_them(api: Server) -> None:
    array = orjson.dumps([orjson.loads(raw) for raw in CAMPAIGN[:3]])
    for content_type in ("Application/JSON", "application/json; charset=utf-8"):
        response = api.client.post("/events", content=array, headers={"content-type": content_type})
        assert (
            response.status_code == 200
            and response.json()["accepted"] + response.json()["duplicates"] == 3
        ), content_type
    ndjson = b"\n".join(CAMPAIGN[3:5])
    for content_type in ("application/x-ndjson", "Application/X-NDJSON; charset=UTF-8", None):
        headers = {} if content_type is None else {"content-type": content_type}
        answer = api.client.post("/events", content=ndjson, headers=headers).json()
        assert answer["accepted"] + answer["duplicates"] == 2, content_type
    refused = api.client.post("/events", content=ndjson, headers={"content-type": "text/csv"})
    assert refused.status_code == 415 and "NDJSON" in refused.json()["detail"]


def test_a_json_array_keeps_amounts_exact(tmp_path: Path) -> None:
    body = b'[{"event_id":"p1","type":"purchase","occurred_at":"2026-11-01T10:00:00Z",'
    body += b'"actor":{"kind":"qq","value":"1"},"order_id":"o1",'
    body += b'"amount":1234567890.12345678,"currency":"CNY"}]'
    server, stop = start_server(tmp_path / "data")
    try:
        answer = server.client.post("/events", content=body, headers=JSON).json()
        assert answer["accepted"] == 1
    finally:
        stop()
    with EmbeddedEngine(tmp_path / "data", CFG) as engine:
        [event] = engine.history({"qq:1"})
        assert event["amount"] == "1234567890.12345678"
        [scores] = engine.export("scores")
    assert engine.export is not None and scores["consumption"] > 0


#: array elements on the edges of the contract, each judged alone
ELEMENTS = [
    line(purchase("g1", "2026-11-01T10:00:00Z", "qq:1", "10")),
    line(comment("c1", "2026-11-01T10:00:00Z", "qq:2"))[:-1] + b',"properties":{"x":NaN}}',
    line(comment("c2", "2026-11-01T10:00:00Z", "qq:2"))[:-1] + b',"properties":{"x":1e400}}',
    line(comment("c3", "2026-11-01T10:00:00Z", "qq:2"))[:-1] + b',"text":"\\ud800"}',
    line(purchase("d1", "2026-11-01T10:00:00Z", "qq:3", "1"))[:-1] + b',"amount":"1000.00"}',
    b"1",
    b'"a string"',
    line(purchase("g2", "2026-11-01T11:00:00Z", "qq:1", "20")),
]


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Server]:
    server, stop = start_server(tmp_path / "twin")
    yield server
    stop()


def test_an_array_behaves_exactly_like_its_elements_as_ndjson_lines(
    api: Server, twin: Server
) -> None:
    pretty = ELEMENTS[0].replace(b",", b",\n  ")  # line breaks between tokens
    array = b"[\n" + b" ,\n".join([pretty, *ELEMENTS[1:]]) + b"\n]"
    as_array = api.client.post("/events", content=array, headers=JSON).json()
    as_lines = twin.post_events([pretty.replace(b"\n", b" "), *ELEMENTS[1:]]).json()
    assert as_array == as_lines
    assert (as_array["accepted"], as_array["rejected"]) == (2, 6)
    reasons = [r["reason"] for r in as_array["results"]]
    expected = ["malformed_json", "invalid_value", "malformed_json", "malformed_json"]
    assert reasons == [*expected, "not_an_object", "not_an_object"]
    assert dead_letters(api, 6) == dead_letters(twin, 6)


@pytest.mark.parametrize(
    "body", [b"[{", b'{"event_id":"x"}', b"[1,]", b"[1 2]", b"[1] [2]", b"[1,,2]", b'["a]']
)
def test_a_body_that_is_not_one_array_is_a_400_and_nothing_is_taken(
    api: Server, body: bytes
) -> None:
    response = api.client.post("/events", content=body, headers=JSON)
    assert response.status_code == 400 and "not one JSON array" in response.json()["detail"]
    assert log_end(api) == 0


def test_an_element_spanning_lines_keeps_its_bytes_in_the_dead_letters(tmp_path: Path) -> None:
    """A log line holds no line break: an element is logged with its line breaks as white
    space (or, inside a string, where JSON allows none, as NUL: still no JSON), and its
    dead letter keeps the bytes received, at ingest and after a replay."""
    broken = line(comment("c1", "2026-11-01T10:00:00Z", "qq:2"))[:-1] + b',"text":"a\nb"}'
    pretty = line(purchase("p1", "2026-11-01T10:00:00Z", "qq:2", "-1")).replace(b",", b",\n  ")
    server, stop = start_server(tmp_path / "data")
    try:
        body = b"[\n" + broken + b",\n" + pretty + b"\n]"
        answer = server.client.post("/events", content=body, headers=JSON).json()
        reasons = [r["reason"] for r in answer["results"]]
        assert reasons == ["malformed_json", "invalid_value"]
        assert [raw.encode() for _, raw in dead_letters(server, 2)] == [broken, pretty]
    finally:
        stop()
    with EmbeddedEngine(tmp_path / "data", CFG) as engine:
        engine.replay_in_place()
        assert [d["line"].encode() for d in engine.export("dlq")] == [broken, pretty]


def test_line_batches_frame_a_body_whatever_its_pieces() -> None:
    body = b"a\r\n\nbb\n  \ncc" + b"\nd" * 7
    for cut in range(1, 8):
        lines = LineBatches(3)
        pieces = [body[i : i + cut] for i in range(0, len(body), cut)]
        batches = [b for piece in pieces for b in lines.feed(piece)] + lines.feed(b"", last=True)
        assert batches == [[b"a", b"bb", b"cc"], [b"d"] * 3, [b"d"] * 3, [b"d"]], cut


def rss_kib(pid: int, field: str) -> int:
    for text in Path(f"/proc/{pid}/status").read_text().splitlines():
        if text.startswith(field + ":"):
            return int(text.split()[1])
    raise AssertionError(field)


@pytest.mark.slow
def test_a_million_line_body_costs_a_batch_of_memory_and_holds_nobody_up(
    tmp_path: Path,
) -> None:
    """The payload of the report: 1,000,000 lines of ``1`` (1.9 MB), once 4.6 GB of server
    memory and a 20-second wait for everyone else."""
    process, url = start("--data-dir", str(tmp_path / "data"), "serve")
    try:
        with httpx.Client(base_url=url, timeout=600) as client:
            client.post("/events", content=CAMPAIGN[0])  # the server at work, then measured
            before = rss_kib(process.pid, "VmRSS")
            big: dict[str, Any] = {}

            def post_big() -> None:
                body = b"1\n" * 1_000_000
                headers = {"content-type": "application/x-ndjson"}
                big["answer"] = client.post("/events", content=body, headers=headers).json()
                big["done"] = time.monotonic()

            poster = threading.Thread(target=post_big)
            poster.start()
            server = Server(url, client)
            eventually(lambda: log_end(server) > 1 or None, timeout=120)  # taken in part
            asked = time.monotonic()
            small = client.post("/events", content=CAMPAIGN[1]).json()
            answered = time.monotonic()
            assert poster.is_alive(), "the big body was taken whole before the small one"
            poster.join(timeout=600)
            peak = rss_kib(process.pid, "VmHWM")
        assert small["accepted"] == 1
        assert big["done"] > answered
        answer = big["answer"]
        assert (answer["accepted"], answer["rejected"]) == (0, 1_000_000)
        assert len(answer["results"]) == MAX_LISTED
        assert answer["unlisted"] == 1_000_000 - MAX_LISTED
        assert all(r["reason"] == "not_an_object" for r in answer["results"])
        growth_mib = (peak - before) / 1024
        waited, after = answered - asked, big["done"] - answered
        print(f"server RSS {before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB")
        print(f"the small request waited {waited:.2f} s, the big one ended {after:.1f} s later")
        assert growth_mib < 256, f"the server grew {growth_mib:.0f} MiB"
    finally:
        process.terminate()
        process.wait(timeout=60)


def test_a_far_future_event_is_refused_and_zeroes_nobody(api: Server) -> None:
    sample = Path(__file__).parents[2] / "examples" / "campaign.ndjson"
    api.client.post("/events", content=sample.read_bytes())
    board = eventually(lambda: api.client.get("/scores?top=1").json()["top"] or None)
    leader = board[0]
    view = api.client.get(f"/persons/{leader['person_id']}").json()
    who = view["identifiers"][0]["identifier"]
    future = line(comment("clock", "2999-01-01T00:00:00Z", who, content_owner=who))
    answer = api.post_events([future]).json()
    assert answer["results"][0]["reason"] == "future_timestamp"
    nudge = line(comment("nudge", "2026-09-29T23:30:00Z", "qq:someone", content_owner=who))
    assert api.post_events([nudge]).json()["accepted"] == 1

    def moved() -> dict[str, Any] | None:
        scores = api.client.get(f"/persons/{leader['person_id']}").json()["scores"]
        return scores if scores["composite"] != leader["composite"] else None

    assert eventually(moved)["composite"] >= leader["composite"]
