"""Reading Server-Sent Events in tests, as a browser's EventSource does."""

from __future__ import annotations

from typing import Any

import httpx
import orjson


def read_events(
    client: httpx.Client, path: str, count: int, headers: dict[str, str] | None = None
) -> list[tuple[int, str, dict[str, Any]]]:
    """The first ``count`` events of a stream as (id, event, parsed data)."""
    events: list[tuple[int, str, dict[str, Any]]] = []
    fields: dict[str, str] = {}
    with client.stream("GET", path, headers=headers or {}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith(":"):
                continue  # a keep-alive comment
            if line:
                name, _, value = line.partition(": ")
                fields[name] = value
                continue
            if "data" in fields:
                events.append((int(fields["id"]), fields["event"], orjson.loads(fields["data"])))
                if len(events) == count:
                    return events
            fields = {}
    raise AssertionError(f"the stream ended after {len(events)} events")
