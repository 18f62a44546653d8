"""The marketing-automation example (examples/marketing_automation.py) against a real
server and a real webhook receiver that fails now and then."""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.api.conftest import CONSENTING_BUYERS, DAY1, DAY2, Server, eventually
from tests.events import identify, line, purchase

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "marketing_automation.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("marketing_automation", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Receiver:
    """A webhook endpoint answering 503 to every other first attempt."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers["Idempotency-Key"]
                status = 503 if sum(k == key for k, _, _ in receiver.calls) == 0 else 200
                receiver.calls.append((key, status, body))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


def test_triggers_become_webhook_calls_with_retries_and_resume(
    api: Server, receiver: Receiver, tmp_path: Path
) -> None:
    example = load_example()
    fast = example.Backoff(base=0.01, cap=0.05)
    state = tmp_path / "offset"
    nobody = line(purchase("p3", DAY1, "qq:nobody", "300"))  # no consent: never a trigger
    api.post_events([*CONSENTING_BUYERS, nobody])
    assert example.run(api.url, receiver.url, state, backoff=fast, limit=2) == 2
    assert example.read_offset(state) == 1
    delivered = [(key, body) for key, status, body in receiver.calls if status == 200]
    assert [key for key, _ in sorted(delivered)] == ["marketing-triggers:0", "marketing-triggers:1"]
    # the trigger names no identifier; the contacts it allows came from the API
    assert sorted(body["label"] for _, body in delivered) == ["qq:****", "qq:l****l"]
    assert all("anchor" not in body for _, body in delivered)
    assert [body["contacts"] for _, body in delivered] == [[], []]  # qq reaches no channel

    api.post_events(
        [
            line(identify("i1", DAY1, "qq:fan", "wechat:fan-w")),
            line(identify("i2", DAY1, "qq:loyal", "phone:+86 139 0000 1111")),
        ]
    )

    def linked() -> bool | None:  # the API follows the topics: a moment after the links
        view = api.client.get("/identities/phone/+8613900001111")
        return (view.status_code == 200 and len(view.json()["identifiers"]) == 2) or None

    eventually(linked)
    assert [status for _, status, _ in receiver.calls].count(503) == 2  # each retried once

    api.post_events(
        [
            line(purchase("p4", DAY2, "qq:fan", "2000")),
            line(purchase("p5", DAY2, "qq:loyal", "2000")),
        ]
    )
    assert example.run(api.url, receiver.url, state, backoff=fast, limit=2) == 2
    done = [(key, body) for key, status, body in receiver.calls if status == 200]
    keys = [key for key, _ in done]
    assert keys == sorted(set(keys)) and keys[-1] == "marketing-triggers:3", "resumed, no repeats"
    reached = {tuple(sorted(c["value"] for c in body["contacts"])) for _, body in done[2:]}
    assert reached == {("fan-w",), ("+8613900001111",)}  # WeChat for one, SMS for the other
