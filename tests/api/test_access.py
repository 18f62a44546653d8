"""Who may read what: with a token set, every route but the public ones needs it, and the
request headers a careless or hostile client sends get a 400, never a 500."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.api.conftest import Server, start_server
from tests.api.sse import read_events
from tests.conformance import CAMPAIGN
from tests.conftest import CLI, cli_env

TOKEN = "s3cret"
#: (method, path) answered without the token: Prometheus, a bare liveness answer, the page
#: shell (it holds no data; it reads everything with the token it is given)
PUBLIC = {("GET", "/metrics"), ("GET", "/healthz"), ("GET", "/")}
#: a value for each path parameter of the routes
PARAMETERS = {"person_id": "p_nobody", "kind": "qq", "value": "1", "name": "dlq"}


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Server]:
    server, stop = start_server(tmp_path / "data", api_token=TOKEN)
    yield server
    stop()


def routes(server: Server) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, its path parameters filled in."""
    out = []
    for route in server.app.routes:
        if not isinstance(route, APIRoute):
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: PARAMETERS[m.group(1)], route.path)
        out += [(method, path) for method in sorted(route.methods)]
    return out


def status(client: httpx.Client, method: str, path: str, **headers: str) -> int:
    """The status a route answers with (a live stream is closed once it answered)."""
    with client.stream(method, path, content=CAMPAIGN[0], headers=headers) as response:
        return response.status_code


def test_every_route_needs_the_token_but_the_public_ones(guarded: Server) -> None:
    served = routes(guarded)
    assert set(served) >= PUBLIC and ("GET", "/openapi.json") in served
    with httpx.Client(base_url=guarded.url, timeout=10) as anonymous:
        for method, path in served:
            without = status(anonymous, method, path)
            with_token = status(anonymous, method, path, authorization=f"Bearer {TOKEN}")
            in_query = status(anonymous, method, f"{path}?access_token={TOKEN}")
            if (method, path) in PUBLIC:
                assert without < 400, (method, path)
            else:
                assert without == 401, (method, path)
            assert with_token not in (400, 401) and with_token < 500, (method, path)
            assert in_query not in (400, 401) and in_query < 500, (method, path)
        for gone in ("/docs", "/redoc"):
            assert anonymous.get(gone).status_code == 404


def test_a_wrong_or_malformed_token_is_refused(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as anonymous:
        for header in ("Bearer wrong", "Basic czNjcmV0", TOKEN, "Bearer", f"Bearer {TOKEN}x"):
            assert anonymous.get("/scores", headers={"authorization": header}).status_code == 401
        assert anonymous.get("/scores", headers={"authorization": f"bearer {TOKEN}"}).is_success
        assert anonymous.get("/scores?access_token=sécret").status_code == 401


def test_a_token_presented_twice_is_a_400_not_a_choice(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as anonymous:
        twice = anonymous.get(f"/scores?access_token={TOKEN}&access_token=wrong")
        assert twice.status_code == 400 and "once" in twice.json()["detail"]
        assert anonymous.get(f"/scores?access_token=wrong&access_token={TOKEN}").status_code == 400
        both = [("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer wrong")]
        assert anonymous.get("/scores", headers=both).status_code == 400


def test_health_tells_only_the_token_holder_more_than_a_bare_status(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, timeout=10) as anonymous:
        assert anonymous.get("/healthz").json() == {"status": "ok"}
    assert guarded.client.get("/healthz").json() == {"status": "ok", "log_end": 0}


def test_a_token_no_header_can_carry_is_refused_at_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "--data-dir", str(tmp_path / "data"), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=cli_env(api_token="sécret"),
        timeout=60,
    )
    assert result.returncode == 2
    assert "CRM2STREAM_API_TOKEN" in result.stderr and "ASCII" in result.stderr
    assert "sécret" not in result.stderr  # a secret is never repeated in a message


@pytest.mark.parametrize(
    "header", ["²", "9" * 5000, "-1", "1.0", "+3", "0x10", "٣", "9223372036854775807"]
)
def test_a_resume_header_that_is_not_an_offset_is_a_400(api: Server, header: str) -> None:
    # sent as the bytes a client puts on the wire (headers travel as Latin-1)
    raw = header.encode("utf-8")
    response = api.client.get("/topics/dlq/stream", headers={"last-event-id": raw})
    assert response.status_code == 400 and "Last-Event-ID" in response.json()["detail"]


def test_a_resume_from_offset_beyond_any_offset_is_refused(api: Server) -> None:
    assert api.client.get(f"/topics/dlq/stream?from={'9' * 5000}").status_code == 422
    assert api.client.get(f"/topics/dlq/stream?from={1 << 63}").status_code == 422


def test_a_resume_header_resumes_after_its_offset(api: Server) -> None:
    api.post_events([*CAMPAIGN[:5], b"{broken", b"{broken too"])
    [(offset, _, record)] = read_events(api.client, "/topics/dlq/stream", 1, {"last-event-id": "0"})
    assert offset == 1 and record["line"] == "{broken too"
