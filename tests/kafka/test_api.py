"""The HTTP API and the dashboard over the distributed engine: ``crm2stream serve --broker``
beside a worker, on the real broker, answering as it does over the embedded engine."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer, TopicPartition
from playwright.sync_api import Browser

from crm2stream.core.tables import STATE_TABLES
from tests.api.conftest import eventually, start
from tests.api.sse import read_events
from tests.browser.dashboard import open_dashboard, open_first_person
from tests.conformance import BAD_INPUT, CAMPAIGN
from tests.kafka.broker import Broker
from tests.kafka.cluster import Cluster, KafkaEngine

EVENTS = CAMPAIGN[:600]


@pytest.fixture
def served(kafka: Broker, tmp_path: Path) -> Iterator[tuple[Cluster, str]]:
    cluster = Cluster(kafka, tmp_path, partitions=2)
    process = None
    try:
        cluster.start_worker()
        cluster.wait_ready()
        process, url = start("serve", "--broker", kafka.url, namespace=cluster.namespace)
        yield cluster, url
    finally:
        if process is not None:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=60) == -signal.SIGTERM
        cluster.close()


def scores_settled(client: httpx.Client, expected: list[dict[str, Any]]) -> Any:
    top = client.get("/scores", params={"top": 5}).json()["top"]
    want = sorted(expected, key=lambda r: (-r["composite"], r["person_id"]))[:5]
    return top if [r["person_id"] for r in top] == [r["person_id"] for r in want] else None


def test_the_api_ingests_into_kafka_and_answers_from_its_topics(
    served: tuple[Cluster, str],
) -> None:
    cluster, url = served
    with httpx.Client(base_url=url, timeout=30) as client:
        body = b"\n".join([*EVENTS, BAD_INPUT["malformed_json"]])
        answer = client.post("/events", content=body).json()
        assert (answer["accepted"], answer["rejected"]) == (len(EVENTS), 1)
        [bad] = answer["results"]  # only the events not accepted are listed
        assert bad["reason"] == "malformed_json" and bad["index"] == len(EVENTS)
        # the events went to the input topic, for the workers
        cluster.ends = _input_ends(cluster)
        cluster.wait_caught_up()
        engine = KafkaEngine(cluster)
        exported = {table: engine.export(table) for table in STATE_TABLES}

        top = eventually(lambda: scores_settled(client, exported["scores"]), timeout=60)
        assert top[0]["composite"] == max(r["composite"] for r in exported["scores"])

        person = exported["persons"][0]
        [anchor] = {
            r["anchor"] for r in exported["identity"] if r["person_id"] == person["person_id"]
        }
        kind, _, value = anchor.partition(":")
        scores = {r["person_id"]: r for r in exported["scores"]}

        def view_settled() -> dict[str, Any] | None:
            # the API follows each table topic's partitions at its own pace: this person's
            # last record may come after the leaders' did
            view: dict[str, Any] = client.get(f"/identities/{kind}/{value}").json()
            return view if view.get("scores") == scores[person["person_id"]] else None

        view = eventually(view_settled, timeout=60)
        assert view["person_id"] == person["person_id"]
        assert view["last_events"], "the input topic's events are in the view"

        [(_, event, dead)] = read_events(client, "/topics/dlq/stream?from=0", 1)
        assert event == "dlq" and dead["reason"] == "malformed_json"
        changes = read_events(client, "/topics/score-changes/stream?from=0", 3)
        assert [offset for offset, _, _ in changes] == [0, 1, 2]
        topics = {t["name"]: t["end"] for t in client.get("/topics").json()}
        assert topics["events"] == len(EVENTS) + 1 and topics["persons"] > 0
        assert client.get("/healthz").json()["status"] == "ok"
        page = client.get("/")
        assert page.status_code == 200 and "leaderboard" in page.text


def _input_ends(cluster: Cluster) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=cluster.broker.bootstrap)
    try:
        tps = [TopicPartition(cluster.names.input, p) for p in range(cluster.partitions)]
        return {tp.partition: end for tp, end in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def test_the_dashboard_shows_the_workers_tables(
    served: tuple[Cluster, str], browser: Browser
) -> None:
    cluster, url = served
    page, problems = open_dashboard(browser, url)
    cluster.produce(EVENTS)  # straight to the input topic, as any producer does
    rows = page.locator("#leaderboard tbody tr")
    rows.first.wait_for(timeout=60_000)
    page.wait_for_function("document.querySelectorAll('#changes li').length > 0", timeout=60_000)
    assert page.locator("#status").inner_text() == "live"
    open_first_person(page)
    assert "consent" in page.locator("#scv").inner_text()
    assert problems == []
