"""The HTTP API over real HTTP: uvicorn on 127.0.0.1 and an httpx client."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from crm2stream.spec.persons import person_id_of
from crm2stream.synth import Campaign, lines
from tests.api.conftest import CONSENTING_BUYERS, DAY2, Server, eventually, start_server
from tests.api.sse import read_events
from tests.conformance import BAD_INPUT, CAMPAIGN
from tests.events import line, permission, purchase


def person_of(api: Server, identifier: str) -> dict[str, Any] | None:
    kind, _, value = identifier.partition(":")
    response = api.client.get(f"/identities/{kind}/{value}")
    return response.json() if response.status_code == 200 else None


def test_a_body_over_the_limit_is_refused_with_413(tmp_path: Path) -> None:
    server, stop = start_server(tmp_path / "data", api_max_body_bytes=4096)
    try:
        response = server.post_events(CAMPAIGN[:100])
        assert response.status_code == 413 and "4096" in response.json()["detail"]
        assert server.post_events(CAMPAIGN[:5]).json()["accepted"] == 5
    finally:
        stop()


def test_the_single_customer_view(api: Server) -> None:
    api.post_events(CAMPAIGN)
    scores = eventually(lambda: api.client.get("/scores?top=5").json()["top"] or None)
    best = scores[0]

    def view_with_events() -> dict[str, Any] | None:
        # the read model takes the tables and the input log in rounds: the person's recent
        # events may come a round after its scores
        view: dict[str, Any] = api.client.get(f"/persons/{best['person_id']}").json()
        return view if view["last_events"] else None

    view = eventually(view_with_events)
    assert view["scores"]["composite"] == best["composite"]
    assert view["label"] == best["label"] and "****" in best["label"]
    members = [row["identifier"] for row in view["identifiers"]]
    assert view["anchor"] in members  # the view, behind the token, names the identifiers
    assert all(row["person_id"] == best["person_id"] for row in view["identifiers"])
    assert view["interactions"]["total"]["done"]
    kind, _, value = members[-1].partition(":")
    assert api.client.get(f"/identities/{kind}/{value}").json()["person_id"] == best["person_id"]
    assert api.client.get("/persons/p_nobody").status_code == 404
    assert api.client.get("/identities/phone/00000").status_code == 404
    assert api.client.get("/identities/Not A Kind/x").status_code == 422


def test_the_leaderboard_ranks_by_composite_and_filters_by_tier(api: Server) -> None:
    api.post_events(CAMPAIGN)

    def ranked() -> dict[str, Any] | None:
        board: dict[str, Any] = api.client.get("/scores?top=50").json()
        return board if board["top"] else None

    board = eventually(ranked)
    composites = [row["composite"] for row in board["top"]]
    assert composites == sorted(composites, reverse=True)
    assert [row["rank"] for row in board["top"]] == list(range(1, len(composites) + 1))
    assert sum(board["tiers"].values()) > len(composites)
    silver = api.client.get("/scores?top=1000&tier=silver").json()["top"]
    assert silver and {row["tier"] for row in silver} == {"silver"}
    assert api.client.get("/scores?tier=diamond").status_code == 422
    assert api.client.get("/scores?top=0").status_code == 422


def test_a_topic_stream_resumes_from_an_offset_and_from_last_event_id(api: Server) -> None:
    api.post_events(CAMPAIGN)
    first = read_events(api.client, "/topics/score-changes/stream?from=0", 10)
    assert [offset for offset, _, _ in first] == list(range(10))
    assert all(
        event == "score-changes" and data["offset"] == offset for offset, event, data in first
    )
    resumed = read_events(
        api.client, "/topics/score-changes/stream?from=0", 3, {"last-event-id": "9"}
    )
    assert [offset for offset, _, _ in resumed] == [10, 11, 12]
    assert resumed[0][2] == read_events(api.client, "/topics/score-changes/stream?from=10", 1)[0][2]
    assert api.client.get("/topics/no-such-topic/stream").status_code == 404


def test_a_stream_delivers_what_is_ingested_after_it_opened(api: Server) -> None:
    end = {t["name"]: t["end"] for t in api.client.get("/topics").json()}["persons"]
    got: list[Any] = []
    reader = threading.Thread(
        target=lambda: got.extend(read_events(api.client, f"/topics/persons/stream?from={end}", 5))
    )
    reader.start()
    api.post_events(CAMPAIGN[:200])
    reader.join(timeout=30)
    assert [offset for offset, _, _ in got] == list(range(end, end + 5))
    assert all(record["key"].startswith("p_") for _, _, record in got)


def test_a_slow_subscriber_holds_up_neither_ingest_nor_other_subscribers(
    api: Server,
) -> None:
    big = list(lines(Campaign(identifiers=2000, events=20_000, days=30, seed=5)))
    api.post_events(big[:10_000])
    # A subscriber that never reads: the server fills its socket and must wait on it.
    address = urlsplit(api.url)
    stalled = socket.create_connection((address.hostname, address.port))
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.sendall(b"GET /topics/relationships/stream?from=0 HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        start = {t["name"]: t["end"] for t in api.client.get("/topics").json()}["score-changes"]
        answer = api.post_events(big[10_000:]).json()
        assert answer["accepted"] == 10_000
        end = eventually(
            lambda: (
                {t["name"]: t["end"] for t in api.client.get("/topics").json()}["score-changes"]
                - start
                or None
            )
        )
        fresh = read_events(api.client, f"/topics/score-changes/stream?from={start}", end)
        assert [offset for offset, _, _ in fresh] == list(range(start, start + end))
        metrics = api.client.get("/metrics").text
        lag = [
            line
            for line in metrics.splitlines()
            if line.startswith("crm2stream_subscriber_lag_records")
            and 'topic="relationships"' in line
            and "sse-" in line
        ]
        assert lag and float(lag[0].split()[-1]) > 0, "the stalled subscriber is behind"
    finally:
        stalled.close()


def test_revoked_consent_ends_marketing_triggers_in_the_api_and_the_stream(api: Server) -> None:
    api.post_events(CONSENTING_BUYERS)
    before = read_events(api.client, "/topics/marketing-triggers/stream?from=0", 2)
    fan_id, loyal_id = (person_id_of(key, b"test-key") for key in ("qq:fan", "qq:loyal"))
    assert {data["person_id"] for _, _, data in before} == {fan_id, loyal_id}
    api.post_events([line(permission("g3", DAY2, "qq:fan", granted=False, channel="wechat"))])
    api.post_events(
        [
            line(purchase("p3", DAY2, "qq:fan", "2000")),
            line(purchase("p4", DAY2, "qq:loyal", "2000")),
        ]
    )
    after = read_events(api.client, "/topics/marketing-triggers/stream?from=2", 1)
    assert [data["person_id"] for _, _, data in after] == [loyal_id]
    changes = read_events(api.client, "/topics/score-changes/stream?from=0", 4)
    assert [data["person_id"] for _, _, data in changes[2:]] == [fan_id, loyal_id]
    fan = eventually(
        lambda: (
            (
                (view := person_of(api, "qq:fan"))
                and view["permissions"]
                and not view["permissions"][0]["granted"]
                and view
            )
            or None
        )
    )
    assert fan["permissions"][0]["active"] is False
    assert fan["last_score_change"]["tier"] == changes[2][2]["tier"]
    total = {t["name"]: t["end"] for t in api.client.get("/topics").json()}
    assert total["marketing-triggers"] == 3


def test_metrics_follow_the_prometheus_conventions(api: Server) -> None:
    api.post_events([*CAMPAIGN[:100], BAD_INPUT["unknown_type"]])
    text = api.client.get("/metrics").text
    for name in (
        'crm2stream_events_total{outcome="accepted",type="',
        'crm2stream_events_total{outcome="rejected",type="unknown"} 1.0',
        "crm2stream_dead_letters_total 1.0",
        "crm2stream_batch_processing_seconds_bucket",
        'crm2stream_topic_end_offset{topic="events"} 101.0',
        'crm2stream_subscriber_position_offset{subscriber="read-model",topic="scores"}',
        'crm2stream_table_rows{table="scores"}',
    ):
        assert name in text, name


def test_health(api: Server) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok", "log_end": 0}


@pytest.mark.parametrize("path", ["/openapi.json", "/"])
def test_the_spec_and_the_dashboard_are_served(api: Server, path: str) -> None:
    response = api.client.get(path)
    assert response.status_code == 200
    if path == "/":
        assert "crm2stream" in response.text and "EventSource" in response.text
    else:
        assert "/topics/{name}/stream" in response.json()["paths"]


def caught_up(server: Server) -> bool | None:
    """Whether the read model has read every topic to its end (from the metrics)."""
    lags = [
        float(line.split()[-1])
        for line in server.client.get("/metrics").text.splitlines()
        if line.startswith('crm2stream_subscriber_lag_records{subscriber="read-model"')
    ]
    return (bool(lags) and not any(lags)) or None


def test_a_restarted_server_resumes_its_read_model(tmp_path: Path) -> None:
    """The read model is kept in the data directory for the same topics: a restarted
    server resumes it (the unit tests of ``readmodel`` say when it starts again)."""
    server, stop = start_server(tmp_path / "data")
    try:
        server.post_events(CAMPAIGN)
        eventually(lambda: server.client.get("/scores").json()["top"] or None)
        eventually(lambda: caught_up(server))
        board = server.client.get("/scores?top=20").json()["top"]
        view = server.client.get(f"/persons/{board[0]['person_id']}").json()
        topics_id = server.app.state.model.topics_id
        assert topics_id is not None
        server.app.state.model.db.put(b"kept", b"1")  # gone if the model starts again
    finally:
        stop()
    assert (tmp_path / "data" / "read-model").is_dir()
    again, stop = start_server(tmp_path / "data")
    try:
        assert again.app.state.model.topics_id == topics_id
        assert again.app.state.model.db.get(b"kept") == b"1"
        eventually(lambda: again.client.get("/scores").json()["top"] or None)
        eventually(lambda: caught_up(again))
        assert again.client.get("/scores?top=20").json()["top"] == board
        assert again.client.get(f"/persons/{board[0]['person_id']}").json() == view
    finally:
        stop()
