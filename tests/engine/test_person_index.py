"""The store indexes the anchor of every person the table topics hold (``n/``), so that
one person's history asked by person id reads only that person's keys."""

from __future__ import annotations

from pathlib import Path

from crm2stream.engine.embedded import EmbeddedEngine
from crm2stream.engine.history import members_of
from tests.conformance import CAMPAIGN
from tests.events import comment, identify, line, unlink
from tests.harness import CFG

#: qq:a and qq:b are two persons, then one (qq:b's id retired), then two again
MERGED = [
    line(comment("m1", "2026-08-01T10:00:00Z", "qq:a")),
    line(comment("m2", "2026-08-01T11:00:00Z", "qq:b")),
    line(identify("m3", "2026-08-02T10:00:00Z", "qq:b", "qq:a")),
]
SPLIT = [line(unlink("m4", "2026-08-03T10:00:00Z", "qq:b", "qq:a"))]


def open_engine(path: Path, **options: bool) -> EmbeddedEngine:
    return EmbeddedEngine(path, CFG, batch_size=250, **options)


def held(engine: EmbeddedEngine) -> dict[str, set[str] | None]:
    """Per person id the persons topic ever named, its members as the identity topic
    holds them now (None: retired)."""
    person_of = {r["key"]: r["value"]["person_id"] for r in engine.store.outputs("identity")}
    latest: dict[str, set[str] | None] = {}
    for record in engine.store.outputs("persons"):
        latest[record["key"]] = None if record["value"] is None else set()
    for identifier, person_id in person_of.items():
        members = latest[person_id]
        assert members is not None
        members.add(identifier)
    return latest


def check_index(engine: EmbeddedEngine) -> None:
    persons = held(engine)
    assert persons
    for person_id, members in persons.items():
        anchor = engine.store.anchor(person_id)
        found = None if anchor is None else members_of(engine.store, anchor)
        assert found == members, person_id


def test_every_person_the_topics_hold_finds_its_members_through_its_anchor(
    tmp_path: Path,
) -> None:
    with open_engine(tmp_path) as engine:
        for part in (MERGED[:2], MERGED[2:], SPLIT, CAMPAIGN[:1500], CAMPAIGN[1500:]):
            engine.ingest_lines(part)  # a publication each
            check_index(engine)
        persons = held(engine)
        assert None in persons.values()  # a retired person id, and its anchor forgotten
        assert sum(members is not None and "qq:b" in members for members in persons.values())


def test_history_by_person_id_reads_the_store_when_the_facts_may_stay_there(
    tmp_path: Path,
) -> None:
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN)
        persons = held(engine)
        expected = {pid: engine.history(engine.members(pid) or set()) for pid in persons}
    with open_engine(tmp_path, defer_load=True) as engine:
        for person_id, members in persons.items():
            assert engine.members(person_id) == members
            assert engine.history(members or set()) == expected[person_id]
        assert engine.members("p_00000000000000000000") is None
        assert engine.deferred  # none of it loaded the facts


def test_a_directory_published_without_the_index_loads_the_facts_for_a_person_id(
    tmp_path: Path,
) -> None:
    with open_engine(tmp_path) as engine:
        engine.ingest_lines(CAMPAIGN)
        person_id, members = next(iter(held(engine).items()))
        engine.anchors_indexed = False  # as a checkpoint of an earlier version says
        engine.checkpoint()
    with open_engine(tmp_path, defer_load=True) as engine:
        assert engine.members(person_id) == members
        assert not engine.deferred
    with open_engine(tmp_path) as engine:
        engine.replay_in_place()  # indexes every person again
    with open_engine(tmp_path, defer_load=True) as engine:
        assert engine.members(person_id) == members
        assert engine.deferred
