"""schemas/ is generated from the models; it must never drift from them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from crm2stream.schemas import render, schemas
from crm2stream.synth import Campaign, events

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"


@pytest.mark.parametrize("name", sorted(schemas()))
def test_committed_schema_matches_the_models(name: str) -> None:
    committed = SCHEMAS / name
    assert committed.exists(), f"run `make schemas`: {name} is missing"
    assert committed.read_bytes() == render(schemas()[name]), f"run `make schemas`: {name} drifted"


def test_no_stale_schema_files() -> None:
    on_disk = {str(p.relative_to(SCHEMAS)) for p in SCHEMAS.rglob("*.json")}
    assert on_disk == set(schemas())


def test_sample_events_satisfy_the_published_schema() -> None:
    import jsonschema

    envelope = orjson.loads((SCHEMAS / "v1" / "event.json").read_bytes())
    validator = jsonschema.Draft202012Validator(envelope)
    for event in events(Campaign(identifiers=50, events=300)):
        validator.validate(event)
