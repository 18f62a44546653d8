"""A disk that fills up under ``crm2stream serve``: run as a script in a mount namespace of
its own (``unshare``), on a tmpfs it can fill, grow and free. It prints what it observed,
as JSON, for ``test_disk_full`` to judge."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson

from crm2stream.synth import Campaign, lines
from tests.api.conftest import start
from tests.conftest import CLI, cli_env

TOKEN = "t0ken"
SETTINGS = {"api_token": TOKEN, "publish_seconds": "0.2", "batch_size": "500"}
EVENTS = list(lines(Campaign(identifiers=20_000, events=200_000, days=60, seed=9)))
BATCH = 500


def mount(directory: Path, size: str, *, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)], check=True)


def fill(directory: Path) -> None:
    """Take every byte left on the device. The server may have filled it already, when
    even the filler cannot be made (``unfill`` then has nothing to remove)."""
    try:
        with (directory / "filler").open("wb") as out:
            while True:
                out.write(b"\0" * (64 << 10))
                out.flush()
    except OSError:
        pass


def main(work: Path) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    device = work / "device"
    device.mkdir()
    mount(device, "16m")
    data = device / "data"
    auth = {"authorization": f"Bearer {TOKEN}"}
    process, url = start("--data-dir", str(data), "serve", **SETTINGS)
    acknowledged: list[bytes] = []
    try:
        with httpx.Client(base_url=url, timeout=60, headers=auth) as client:
            for at in range(0, len(EVENTS), BATCH):
                batch = EVENTS[at : at + BATCH]
                response = client.post("/events", content=b"\n".join(batch))
                if response.status_code != 200:
                    seen["refused"] = [response.status_code, response.json()["detail"]]
                    break
                acknowledged += batch
            health = client.get("/healthz")
            seen["health"] = [health.status_code, health.json()]
            seen["bare_health"] = httpx.get(url + "healthz").json()
            seen["reads"] = {
                path: [(r := client.get(path)).status_code, r.json()["detail"]]
                for path in ("/scores", "/topics", "/persons/p_x", "/topics/dlq/stream")
            }
    finally:
        process.terminate()
        seen["stopped"] = process.wait(timeout=60)
    seen["acknowledged"] = len(acknowledged)
    fill(device)
    full = subprocess.run(
        [*CLI, "--data-dir", str(data), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=cli_env(**SETTINGS),
        timeout=120,
    )
    seen["full_restart"] = [full.returncode, full.stderr]
    (device / "filler").unlink(missing_ok=True)
    mount(device, "256m", remount=True)
    process, url = start("--data-dir", str(data), "serve", **SETTINGS)
    try:
        with httpx.Client(base_url=url, timeout=60, headers=auth) as client:
            ends = {t["name"]: t["end"] for t in client.get("/topics").json()}
            seen["restarted_log_end"] = ends["events"]
    finally:
        process.terminate()
        process.wait(timeout=60)
    direct = work / "direct"
    (work / "acknowledged.ndjson").write_bytes(b"\n".join(acknowledged) + b"\n")
    env = cli_env(**SETTINGS)
    digest = [*CLI, "digest"]
    subprocess.run(
        [*CLI, "--data-dir", str(direct), "ingest", str(work / "acknowledged.ndjson")],
        env=env,
        check=True,
        capture_output=True,
    )
    seen["digests"] = [
        subprocess.run(
            [*digest[:-1], "--data-dir", str(d), "digest"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for d in (data, direct)
    ]
    return seen


if __name__ == "__main__":
    os.environ.setdefault("CRM2STREAM_ID_KEY", "test-key")
    sys.stdout.write(orjson.dumps(main(Path(sys.argv[1]))).decode())
