"""The published OpenAPI spec, fuzzed with schemathesis against a real server: whatever
the inputs, no 5xx. (Live streams never end, so the stream route is left to its own tests.)"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from tests.api.conftest import Server


def test_no_input_gets_a_server_error(api: Server) -> None:
    schema = schemathesis.openapi.from_url(api.url + "openapi.json")
    schema = schema.exclude(path="/topics/{name}/stream")
    fuzzed = []
    for found in schema.get_all_operations():
        operation = found.ok()
        fuzzed.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=api.url.rstrip("/"), checks=[not_a_server_error])

        no_server_error()
    assert "POST /events" in fuzzed and "GET /persons/{person_id}" in fuzzed
