"""Generate ``schemas/``: the JSON Schema of every event type (and of the envelope union)
from the pydantic models, the single definition of the wire format.

``python -m crm2stream.schemas DIR`` writes them; a test fails when they drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from crm2stream.core.events import EVENT_MODELS, SCHEMA_VERSION, Event

BASE_URI = "https://crm2stream.org/schemas"


def schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for every event type and the envelope."""
    out: dict[str, dict[str, Any]] = {}
    for name, model in EVENT_MODELS.items():
        schema = model.model_json_schema()
        schema["$id"] = f"{BASE_URI}/v{SCHEMA_VERSION}/{name}.json"
        out[f"v{SCHEMA_VERSION}/{name}.json"] = schema
    envelope: dict[str, Any] = TypeAdapter(Event).json_schema()
    envelope["$id"] = f"{BASE_URI}/v{SCHEMA_VERSION}/event.json"
    envelope["title"] = "crm2stream event"
    envelope["description"] = (
        "One event per NDJSON line; `type` selects the shape. Unknown fields are errors."
    )
    out[f"v{SCHEMA_VERSION}/event.json"] = envelope
    return out


def render(schema: dict[str, Any]) -> bytes:
    return orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def write(directory: Path) -> list[Path]:
    written = []
    for name, schema in schemas().items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(render(schema))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")):
        print(path)
