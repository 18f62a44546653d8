"""The read model against what it means: each table's latest value per key, and the
single customer view, leaderboard, tiers and sizes computed from those values directly."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm2stream.api.readmodel import ReadModel, rank
from crm2stream.core.events import format_micros, timestamp_micros
from crm2stream.core.validation import Rejection, decode
from crm2stream.engine.host import EngineUnavailable
from tests.conformance import CAMPAIGN
from tests.harness import CFG

# "p_1" and "p_10": one person id a prefix of another's
PERSONS = ["p_1", "p_10", "p_2"]
IDENTIFIERS = ["wechat:a", "wechat:a1", "qq:b", 'email:"c"']
TIERS = ["bronze", "gold"]
Change = tuple[str, str, Any]  # (table, key, value or None)


def _identity(person: str) -> dict[str, Any]:
    return {"person_id": person, "anchor": person}


def _scores(person: str, composite: float, tier: str) -> dict[str, Any]:
    return {"person_id": person, "composite": composite, "tier": tier, "label": person}


def _tie(source: str, target: str, strength: float) -> dict[str, Any]:
    return {"from_person_id": source, "to_person_id": target, "strength": strength}


persons = st.sampled_from(PERSONS)
strengths = st.sampled_from([0.0, 0.5, 1.0, 2.5])
change = st.one_of(
    st.tuples(
        st.just("identity"),
        st.sampled_from(IDENTIFIERS),
        st.none() | persons.map(_identity),
    ),
    st.tuples(st.just("persons"), persons, st.none() | persons.map(lambda p: {"label": p})),
    st.tuples(
        st.just("scores"),
        persons,
        st.none() | st.builds(_scores, st.just(""), strengths, st.sampled_from(TIERS)),
    ),
    st.tuples(st.just("relationships"), st.tuples(persons, persons), st.none() | strengths),
    st.tuples(st.just("rfm"), persons, st.none() | st.just({"r": 1})),
)


def _normal(changes: list[Any]) -> list[Change]:
    """Changes as records carry them: a scores value names its key's person, a
    relationship's key is ``from>to``."""
    out: list[Change] = []
    for table, key, value in changes:
        if table == "scores" and value is not None:
            value = {**value, "person_id": key}
        if table == "relationships":
            source, target = key
            key = f"{source}>{target}"
            value = None if value is None else _tie(source, target, value)
        out.append((table, key, value))
    return out


def _records(changes: list[Change]) -> dict[str, list[tuple[int, bytes]]]:
    """Each table's records as the topics hold them (canonical JSON)."""
    topics: dict[str, list[tuple[int, bytes]]] = {}
    for table, key, value in changes:
        held = topics.setdefault(table, [])
        record = {"at": "2026-01-01T00:00:00Z", "key": key, "offset": len(held), "value": value}
        held.append((len(held), orjson.dumps(record, option=orjson.OPT_SORT_KEYS)))
    return topics


def _expected(changes: list[Change]) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {}
    for table, key, value in changes:
        rows = tables.setdefault(table, {})
        if value is None:
            rows.pop(key, None)
        else:
            rows[key] = value
    return tables


@pytest.fixture
def model(tmp_path: Path) -> Iterator[ReadModel]:
    held = ReadModel("CNY", tmp_path / "read-model")
    held.open()
    yield held
    held.close()


@settings(max_examples=150, deadline=None)
@given(
    changes=st.lists(change, max_size=40).map(_normal),
    chunk=st.integers(1, 7),
    overlap=st.integers(0, 3),
    top=st.integers(1, 4),
)
def test_the_model_answers_what_the_latest_values_say(
    tmp_path_factory: pytest.TempPathFactory,
    changes: list[Change],
    chunk: int,
    overlap: int,
    top: int,
) -> None:
    model = ReadModel("CNY", tmp_path_factory.mktemp("m") / "read-model")
    model.open()
    try:
        for topic, records in _records(changes).items():
            # in chunks, each one read again from a little before where the last ended
            start = 0
            while start < len(records):
                begin = max(0, start - overlap)
                model.apply(topic, records[begin : start + chunk])
                start += chunk
        tables = _expected(changes)
        rows = {table: tables.get(table, {}) for table in model.counts}
        assert model.sizes() == {table: len(held) for table, held in rows.items()}
        assert model.tiers() == dict(Counter(r["tier"] for r in rows["scores"].values()))
        for tier in (None, *TIERS):
            board = [r for r in rows["scores"].values() if tier in (None, r["tier"])]
            best = sorted(board, key=lambda r: (-r["composite"], r["person_id"]))[:top]
            expected = [{"rank": n, **r} for n, r in enumerate(best, 1)]
            assert model.leaderboard(top, tier) == expected
        for identifier in IDENTIFIERS:
            row = rows["identity"].get(identifier)
            assert model.person_of(identifier) == (row and row["person_id"])
        for person in PERSONS:
            view = model.person(person)
            if person not in rows["persons"]:
                assert view is None
                continue
            assert view is not None
            members = sorted(i for i, r in rows["identity"].items() if r["person_id"] == person)
            assert [r["person_id"] for r in view["identifiers"]] == [person] * len(members)
            assert view["identifiers"] == [rows["identity"][m] for m in members]
            ties = [r for r in rows["relationships"].values() if r["from_person_id"] == person]
            strongest = heapq.nsmallest(10, ties, key=lambda r: (-r["strength"], r["to_person_id"]))
            assert view["relationships"] == strongest
            assert view["scores"] == rows["scores"].get(person)
            assert view["rfm"] == rows["rfm"].get(person)
    finally:
        model.close()


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=2, max_size=8))
def test_rank_bytes_sort_as_the_leaderboard_does(composites: list[float]) -> None:
    people = [(c, f"p_{n}") for n, c in enumerate(composites)] + [(composites[0], "p_0a")]
    by_bytes = sorted(people, key=lambda p: rank(*p))
    assert by_bytes == sorted(people, key=lambda p: (-p[0], p[1]))


def test_change_streams_keep_the_recent_records_and_each_persons_last_change(
    model: ReadModel,
) -> None:
    changes = [
        (n, orjson.dumps({"offset": 99, "person_id": f"p_{n % 3}", "composite": n}))
        for n in range(250)
    ]
    for start in range(0, len(changes), 40):  # each read from a little before the last end
        model.apply("score-changes", changes[max(0, start - 5) : start + 40])
    assert [r["offset"] for r in model.recent["score-changes"]] == list(range(50, 250))
    view_of = {p: {"label": p} for p in ("p_0", "p_1", "p_2")}
    for person, row in view_of.items():
        key = orjson.dumps(person)
        record = b'{"at":"t","key":%s,"offset":0,"value":%s}' % (key, orjson.dumps(row))
        model.positions["persons"] = 0
        model.apply("persons", [(0, record)])
        view = model.person(person)
        assert view is not None and view["last_score_change"]["composite"] == max(
            n for n in range(250) if f"p_{n % 3}" == person
        )


def test_a_second_model_on_the_same_directory_is_refused(model: ReadModel, tmp_path: Path) -> None:
    second = ReadModel("CNY", model.path)
    with pytest.raises(EngineUnavailable, match="another server keeps its read model"):
        second.open()
    model.close()
    second.open()  # once the first has let go
    second.close()


def _table_record(key: str, value: Any) -> bytes:
    record = {"at": "t", "key": key, "offset": 0, "value": value}
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


def _summaries(lines: list[bytes]) -> dict[str, list[dict[str, Any]]]:
    """Each identifier's accepted events in log order, as a view summarises them (of
    lines with the same event id, the first)."""
    named: dict[str, list[dict[str, Any]]] = {}
    taken: set[str] = set()
    for position, line in enumerate(lines):
        event = decode(line, CFG.currency)
        if isinstance(event, Rejection) or event.event_id in taken:
            continue
        taken.add(event.event_id)
        summary = {
            "offset": position,
            "event_id": event.event_id,
            "type": event.type,
            "occurred_at": format_micros(timestamp_micros(event.occurred_at)),
            "actor": event.actor.key,
        }
        for identifier in {i.key for i in event.identifiers()}:
            named.setdefault(identifier, []).append(summary)
    return named


def test_a_persons_last_events_are_its_identifiers_latest_accepted_ones(
    model: ReadModel,
) -> None:
    """The input log read in chunks, a rejected line and two lines reusing an event id
    (one the same event again, one another event under an id taken) among it: a person's
    last events are the latest of each of its identifiers' accepted events (of lines with
    one event id, the first, as the engine takes), the ten latest of those by event time."""
    named = _summaries(CAMPAIGN)
    busiest = sorted(named, key=lambda i: (-len(named[i]), i))[:3]
    again = CAMPAIGN[named[busiest[0]][-3]["offset"]]
    taken_id = named[busiest[1]][-2]["event_id"]
    other = orjson.loads(CAMPAIGN[named[busiest[0]][-1]["offset"]])
    reused = orjson.dumps({**other, "event_id": taken_id})
    lines = [*CAMPAIGN[:1500], b"{not json", *CAMPAIGN[1500:], again, reused]
    for start in range(0, len(lines), 333):
        model.apply_log(start, lines[start : start + 333])
    named = _summaries(lines)
    owners = {busiest[0]: "p_1", busiest[1]: "p_1", busiest[2]: "p_2"}
    model.apply("persons", [(n, _table_record(p, {"label": p})) for n, p in enumerate(PERSONS)])
    model.apply(
        "identity",
        [(n, _table_record(i, _identity(p))) for n, (i, p) in enumerate(owners.items())],
    )
    for person in ("p_1", "p_2"):
        latest: dict[str, dict[str, Any]] = {}
        for identifier in (i for i, p in owners.items() if p == person):
            kept: dict[str, dict[str, Any]] = {}
            for summary in reversed(named[identifier]):
                if len(kept) < 10:
                    kept.setdefault(summary["event_id"], summary)
            latest |= kept
        expected = sorted(latest.values(), key=lambda e: (e["occurred_at"], e["event_id"]))
        view = model.person(person)
        assert view is not None and view["last_events"] == expected[-10:]
    nobody = model.person("p_10")  # a person without identifiers
    assert nobody is not None and nobody["last_events"] == [] and nobody["identifiers"] == []


def _answers(model: ReadModel) -> dict[str, Any]:
    return {
        "sizes": model.sizes(),
        "tiers": model.tiers(),
        "board": model.leaderboard(10),
        "persons": [model.person(p) for p in PERSONS],
        "recent": {stream: list(rows) for stream, rows in model.recent.items()},
        "positions": dict(model.positions),
    }


def _kept(path: Path) -> dict[str, Any]:
    """A model of topics "topics-1" closed in ``path``; its answers."""
    changes = _normal(
        [
            ("identity", "wechat:a", _identity("p_1")),
            ("persons", "p_1", {"label": "p_1"}),
            ("scores", "p_1", _scores("", 2.5, "gold")),
            ("relationships", ("p_1", "p_2"), 1.0),
        ]
    )
    model = ReadModel("CNY", path)
    model.open("topics-1", {})
    for topic, records in _records(changes).items():
        model.apply(topic, records)
    model.apply("score-changes", [(0, orjson.dumps({"person_id": "p_1", "composite": 2.5}))])
    model.apply_log(0, CAMPAIGN[:50])
    answers = _answers(model)
    model.close()
    return answers


def test_a_model_resumes_only_the_topics_it_read(tmp_path: Path) -> None:
    """Closed, a model of topics with an id is kept, and resumed by a model of the same
    topics with the same answers; topics of another id, or ending before where the model
    got to, start it again from nothing; a model of topics without an id is not kept."""
    path = tmp_path / "read-model"
    answers = _kept(path)
    ends = dict(answers["positions"])
    again = ReadModel("CNY", path)
    again.open("topics-1", ends)
    assert _answers(again) == answers
    again.close()
    for topics_id, shorter in (("topics-2", ends), ("topics-1", {**ends, "scores": 0})):
        _kept(path)
        other = ReadModel("CNY", path)
        other.open(topics_id, shorter)
        assert set(other.positions.values()) == {0} and other.person("p_1") is None
        assert other.sizes()["identity"] == 0
        other.close()
    passing = ReadModel("CNY", path)
    passing.open(None, ends)
    assert passing.sizes()["identity"] == 0
    passing.close()
    assert not path.exists()


def test_a_failed_write_leaves_the_model_as_it_was(model: ReadModel) -> None:
    model.close()
    model.open("topics-1", {})
    record = orjson.dumps({"person_id": "p_1", "composite": 1.0})
    model.apply("score-changes", [(0, record)])
    before = _answers(model)
    db = model.db

    class Failing:
        def __getattr__(self, name: str) -> Any:
            if name == "write":
                raise OSError("no space left on the device")
            return getattr(db, name)

    model._db = Failing()  # type: ignore[assignment]
    with pytest.raises(OSError, match="no space"):
        model.apply("score-changes", [(1, record)])
    with pytest.raises(OSError, match="no space"):
        model.apply(
            "scores", _records(_normal([("scores", "p_2", _scores("", 1.0, "gold"))]))["scores"]
        )
    model._db = db
    assert _answers(model) == before


@pytest.mark.parametrize("damage", ["state", "files"])
def test_a_damaged_model_is_built_again(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "read-model"
    answers = _kept(path)
    if damage == "state":
        held = ReadModel("CNY", path)
        held.open(None)  # opened without an id: not resumed, and removed at close
        held.close()
        path.mkdir()
        (path / "CURRENT").write_text("not a manifest\n")
    else:
        for file in path.iterdir():
            if file.suffix == ".sst" or file.name.startswith("MANIFEST"):
                file.write_bytes(b"garbage")
    model = ReadModel("CNY", path)
    model.open("topics-1", dict(answers["positions"]))
    assert set(model.positions.values()) == {0} and model.sizes()["identity"] == 0
    model.close()
