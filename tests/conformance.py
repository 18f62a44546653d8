"""The behaviour every engine must show, written once.

An engine's test module subclasses ``ConformanceSuite`` and provides ``engine`` (a fixture
returning an ``EngineUnderTest``). The expected tables come from the pure core run alone,
so every engine is held to the same answer.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any, Protocol

import orjson
import pytest

from crm2stream.core.events import parse_day
from crm2stream.core.tables import STATE_TABLES
from crm2stream.spec.persons import person_id_of
from crm2stream.synth import BAD_LINES, Campaign, lines
from tests import harness
from tests.events import comment, line, permission, purchase, share
from tests.harness import CFG
from tests.topics import check_compaction

STREAMS = ("score-changes", "marketing-triggers")


class EngineUnderTest(Protocol):
    def ingest(self, lines: list[bytes]) -> dict[str, int]: ...
    def export(self, table: str, as_of: int | None = None) -> list[dict[str, Any]]: ...
    def digest(self, as_of: int | None = None) -> str: ...
    def replay(self) -> str: ...
    def topic(self, name: str) -> list[dict[str, Any]]:
        """Every record of an output topic, from offset 0."""
        ...


CAMPAIGN = list(lines(Campaign(identifiers=300, events=3000, days=40, seed=11)))
GOOD = purchase("good-1", "2026-11-01T10:00:00Z", "phone:138", "10")
BAD_INPUT = {
    "malformed_json": b'{"event_id": "x", "type": ',
    "not_an_object": b"[1, 2, 3]",
    "unknown_type": b'{"event_id":"u","type":"like","occurred_at":"2026-11-01T10:00:00Z"}',
    "missing_field": line({k: v for k, v in GOOD.items() if k != "amount"}),
    "unknown_field": line(dict(GOOD, event_id="extra", colour="red")),
    "bad_timestamp": line(dict(GOOD, event_id="ts", occurred_at="2026-11-01 10:00")),
    "negative_amount": line(dict(GOOD, event_id="neg", amount="-5")),
    "wrong_currency": line(dict(GOOD, event_id="usd", currency="USD")),
    "oversized_field": line(dict(GOOD, event_id="big", order_id="o" * 200)),
    "invalid_utf8": b'{"event_id":"\xc3\x28"}',
}
EXPECTED_REASON = {
    "bad_timestamp": "invalid_value",
    "negative_amount": "invalid_value",
    "wrong_currency": "currency_mismatch",
    "oversized_field": "too_large",
    "invalid_utf8": "encoding",
}


def expected_tables(raw: list[bytes], day: int | None = None) -> dict[str, list[Any]]:
    facts = harness.run(raw)
    return {table: harness.table(facts, table, day) for table in STATE_TABLES}


class ConformanceSuite:
    engine: EngineUnderTest

    @pytest.fixture(autouse=True)
    def _engine(self, engine: EngineUnderTest) -> Iterator[None]:
        self.engine = engine
        yield

    def test_tables_equal_the_core_run_alone(self) -> None:
        counts = self.engine.ingest(CAMPAIGN)
        assert counts == {"accepted": len(CAMPAIGN), "rejected": 0, "duplicates": 0}
        expected = expected_tables(CAMPAIGN)
        for table in STATE_TABLES:
            assert self.engine.export(table) == expected[table], table
        assert self.engine.digest() == harness.digest(harness.run(CAMPAIGN))

    def test_table_topics_compact_to_the_tables(self) -> None:
        self.engine.ingest(CAMPAIGN)
        topics = {table: self.engine.topic(table) for table in STATE_TABLES}
        check_compaction(topics, self.engine.export)
        after = len(topics["persons"])
        self.engine.ingest(CAMPAIGN[:10])  # duplicates only: nothing changes, nothing is published
        assert len(self.engine.topic("persons")) == after

    def test_no_output_but_the_identity_table_names_an_identifier(self) -> None:
        """Person ids are pseudonyms: the table topics and change streams name persons by
        id and a masked label; raw identifiers are the identity table's alone (and the dead
        letters', which keep the bytes received)."""
        self.engine.ingest(CAMPAIGN)
        identifiers = {r["identifier"] for r in self.engine.export("identity")}
        values = {key.partition(":")[2] for key in identifiers}
        assert min(map(len, values)) >= 6, "values long enough not to match by chance"
        outputs = [*(t for t in STATE_TABLES if t != "identity"), *STREAMS]
        for name in outputs:
            text = orjson.dumps(self.engine.topic(name)).decode()
            named = [v for v in values if v in text]
            assert not named, (name, named[:3])
        labels = {r["label"] for r in self.engine.export("persons")}
        assert all("****" in label for label in labels)

    def test_a_hub_of_twenty_thousand_ties_keeps_every_record_small(self) -> None:
        """A key opinion leader: 10,000 fans comment on her note and she replies to each,
        20,000 ties. Once one relationships record per person held them all (5 MB, more
        than a Kafka message): now each record is one pair, and a later touch writes only
        the pairs it changed."""
        at = "2026-11-01T10:00:00Z"
        hub = [
            line(comment(f"c{i}", at, f"qq:fan{i:05d}", content_owner="weibo:kol"))
            for i in range(10_000)
        ]
        hub += [
            line(comment(f"r{i}", at, "weibo:kol", reply_to=f"qq:fan{i:05d}"))
            for i in range(10_000)
        ]
        assert self.engine.ingest(hub)["accepted"] == 20_000
        assert self.engine.digest() == harness.digest(harness.run(hub))
        relationships = self.engine.topic("relationships")
        kol = person_id_of("weibo:kol", CFG.id_key)
        assert sum(r["key"].startswith(kol + ">") for r in relationships) == 10_000
        for name in STATE_TABLES:
            largest = max(len(orjson.dumps(r)) for r in self.engine.topic(name))
            assert largest < 4096, (name, largest)
        again = line(comment("again", "2026-11-01T11:00:00Z", "weibo:kol", reply_to="qq:fan00007"))
        self.engine.ingest([again])
        end = relationships[-1]["offset"]  # (a compaction may have left gaps before it)
        later = [r for r in self.engine.topic("relationships") if r["offset"] > end]
        assert [r["key"] for r in later] == [f"{kol}>{person_id_of('qq:fan00007', CFG.id_key)}"]
        assert later[0]["value"]["counts"]["reply"] == 2

    def test_as_of_time_travel(self) -> None:
        self.engine.ingest(CAMPAIGN)
        day = parse_day("2026-08-20")
        expected = expected_tables(CAMPAIGN, day)
        for table in STATE_TABLES:
            assert self.engine.export(table, day) == expected[table], table

    def test_rows_are_sorted_by_key(self) -> None:
        self.engine.ingest(CAMPAIGN)
        keys = {
            "persons": ("person_id",),
            "identity": ("identifier",),
            "relationships": ("from_person_id", "to_person_id"),
            "permissions": ("person_id", "grantee", "purpose", "channel"),
        }
        for table in STATE_TABLES:
            fields = keys.get(table, ("person_id",))
            rows = [tuple(r[f] for f in fields) for r in self.engine.export(table)]
            assert rows == sorted(rows) and len(rows) == len(set(rows)), table

    @pytest.mark.parametrize("bad", sorted(BAD_INPUT))
    def test_bad_input_goes_to_the_dead_letters_and_neighbours_are_applied(self, bad: str) -> None:
        good = CAMPAIGN[:50]
        batch = [*good[:25], BAD_INPUT[bad], *good[25:]]
        counts = self.engine.ingest(batch)
        assert counts == {"accepted": 50, "rejected": 1, "duplicates": 0}
        [dead] = self.engine.export("dlq")
        assert dead["reason"] == EXPECTED_REASON.get(bad, bad)
        assert dead["error"]
        assert dead["offset"] == 25
        original = dead.get("line", "").encode() or base64.b64decode(dead["line_base64"])
        assert original == BAD_INPUT[bad]
        assert self.engine.digest() == harness.digest(harness.run(good))

    def test_an_event_dated_far_after_it_arrived_is_rejected_and_moves_no_clock(self) -> None:
        """A wrong clock in the field: one comment dated in 2999 once took the default as-of
        there, every composite to 0 and everyone to bronze."""
        good = CAMPAIGN[:300]
        future = line(comment("far", "2999-01-01T00:00:00Z", "qq:clock", content_owner="qq:x"))
        counts = self.engine.ingest([*good[:150], future, *good[150:]])
        assert counts == {"accepted": 300, "rejected": 1, "duplicates": 0}
        [dead] = self.engine.export("dlq")
        assert dead["reason"] == "future_timestamp" and dead["line"].encode() == future
        assert "2999-01-01T00:00:00Z" in dead["error"]
        assert self.engine.digest() == harness.digest(harness.run(good))

    def test_duplicates_are_counted_never_applied_twice(self) -> None:
        first = self.engine.ingest(CAMPAIGN[:100])
        again = self.engine.ingest(CAMPAIGN[50:150])
        assert first == {"accepted": 100, "rejected": 0, "duplicates": 0}
        assert again == {"accepted": 50, "rejected": 0, "duplicates": 50}
        dead = self.engine.export("dlq")
        assert [d["reason"] for d in dead] == ["duplicate"] * 50
        assert [d["line"].encode() for d in dead] == CAMPAIGN[50:100]
        assert self.engine.digest() == harness.digest(harness.run(CAMPAIGN[:150]))

    def test_a_valid_event_reusing_an_accepted_id_is_a_duplicate(self) -> None:
        self.engine.ingest([line(GOOD)])
        counts = self.engine.ingest([line(dict(GOOD, amount="999"))])
        assert counts["duplicates"] == 1
        [dead] = self.engine.export("dlq")
        assert dead["reason"] == "duplicate" and "good-1" in dead["error"]
        [row] = self.engine.export("rfm")
        assert self.engine.export("scores")[0]["consumption"] == 10.0
        assert row["frequency"] == 0

    def test_an_invalid_event_is_rejected_whatever_its_id(self) -> None:
        self.engine.ingest([line(GOOD)])
        counts = self.engine.ingest([line(dict(GOOD, amount="-1"))])
        assert counts == {"accepted": 0, "rejected": 1, "duplicates": 0}

    def test_the_mix_of_bad_lines_in_a_stream(self) -> None:
        mixed = [*CAMPAIGN[:200], *BAD_LINES, *CAMPAIGN[200:400]]
        counts = self.engine.ingest(mixed)
        assert counts == {"accepted": 400, "rejected": len(BAD_LINES), "duplicates": 0}
        assert len(self.engine.export("dlq")) == len(BAD_LINES)

    def test_replay_rebuilds_the_same_tables(self) -> None:
        self.engine.ingest(CAMPAIGN[:1500])
        self.engine.ingest([*BAD_LINES, *CAMPAIGN[1500:]])
        digest = self.engine.digest()
        changes = self.engine.export("score-changes")
        assert self.engine.replay() == digest
        assert self.engine.digest() == digest
        assert self.engine.export("score-changes") == changes
        assert len(self.engine.export("dlq")) == len(BAD_LINES)

    def test_marketing_triggers_only_for_people_who_granted_marketing(self) -> None:
        at = "2026-11-01T10:00:00Z"
        later = "2026-11-02T10:00:00Z"
        self.engine.ingest(
            [
                line(permission("g1", at, "qq:fan", channel="wechat")),
                line(purchase("p1", at, "qq:fan", "300")),
                line(purchase("p2", at, "qq:other", "300")),
            ]
        )
        fan, other = person_id_of("qq:fan", CFG.id_key), person_id_of("qq:other", CFG.id_key)
        changes = {c["person_id"] for c in self.engine.export("score-changes")}
        assert changes == {fan, other}
        [trigger] = self.engine.export("marketing-triggers")
        assert trigger["person_id"] == fan and trigger["label"] == "qq:****"
        assert "anchor" not in trigger
        assert trigger["grants"] == [{"grantee": "brand:lumiere", "channel": "wechat"}]
        self.engine.ingest(
            [
                line(permission("g2", later, "qq:fan", granted=False, channel="wechat")),
                line(purchase("p3", later, "qq:fan", "2000")),
            ]
        )
        fan_changes = [c for c in self.engine.export("score-changes") if c["person_id"] == fan]
        assert len(fan_changes) == 2 and fan_changes[-1]["tier"] == "silver"
        assert len(self.engine.export("marketing-triggers")) == 1

    def test_consent_table_and_expiry(self) -> None:
        self.engine.ingest(
            [
                line(
                    permission(
                        "g1", "2026-11-01T10:00:00Z", "qq:1", expires_at="2026-11-03T00:00:00Z"
                    )
                ),
                line(share("s1", "2026-11-05T10:00:00Z", "qq:2")),
            ]
        )
        [on_day] = self.engine.export("permissions", parse_day("2026-11-02"))
        [later] = self.engine.export("permissions")
        assert on_day["active"] is True and later["active"] is False
        assert later["expires_at"] == "2026-11-03T00:00:00Z"
