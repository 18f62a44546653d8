"""docker-compose.yml, mirrored without containers: its crm2stream services run as local
processes with the commands and environment it gives them (only the broker address, the
ports and a namespace differ), against the real test broker; Prometheus' targets are those
workers, and every metric the Grafana dashboard draws is one they expose."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

from tests.api.conftest import eventually, start
from tests.conformance import CAMPAIGN
from tests.conftest import CLI, cli_env
from tests.kafka.broker import Broker, free_port
from tests.kafka.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_file_is_complete() -> None:
    services = compose()["services"]
    wanted = {"kafka", "topics", "worker-1", "worker-2", "api", "prometheus", "grafana"}
    assert wanted <= set(services)
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for name in ("worker-1", "worker-2"):
        assert services[name]["command"][0] == "worker"
        assert services[name]["environment"]["CRM2STREAM_BROKER"] == "kafka://kafka:9092"
    prometheus = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    targets = {
        job["job_name"]: sorted(job["static_configs"][0]["targets"])
        for job in prometheus["scrape_configs"]
    }
    port = {name: services[name]["command"][-1] for name in ("worker-1", "worker-2", "api")}
    assert targets == {
        "crm2stream-workers": [f"worker-1:{port['worker-1']}", f"worker-2:{port['worker-2']}"],
        "crm2stream-api": [f"api:{port['api']}"],
    }
    assert services["api"]["command"][:3] == ["serve", "--broker", "kafka://kafka:9092"]
    for path in services["grafana"]["volumes"]:
        assert (ROOT / path.split(":")[0].removeprefix("./")).exists(), path


def dashboard_metrics() -> set[str]:
    board = orjson.loads((ROOT / "deploy/grafana/dashboards/crm2stream.json").read_bytes())
    exprs = [t["expr"] for panel in board["panels"] for t in panel["targets"]]
    return {m for expr in exprs for m in re.findall(r"crm2stream_[a-z_]+", expr)}


def local(command: list[str]) -> list[str]:
    """A service's command as a local process runs it: its own port, on loopback."""
    out = list(command)
    if "--port" in out:
        out[out.index("--port") + 1] = str(free_port())
    if "--host" in out:
        out[out.index("--host") + 1] = "127.0.0.1"
    return out


def test_the_compose_services_run_as_processes(kafka: Broker, tmp_path: Path) -> None:
    services = compose()["services"]
    namespace = f"compose{uuid.uuid4().hex[:6]}"

    def env(service: str) -> dict[str, str]:
        settings = {
            k.removeprefix("CRM2STREAM_").lower(): v
            for k, v in services[service]["environment"].items()
        }
        return cli_env(**{**settings, "broker": kafka.url, "namespace": namespace})

    topics = subprocess.run(
        [*CLI, *services["topics"]["command"]], env=env("topics"), capture_output=True, text=True
    )
    assert topics.returncode == 0, topics.stderr
    workers, ports = [], []
    for name in ("worker-1", "worker-2"):
        command = local(services[name]["command"])
        ports.append(int(command[command.index("--port") + 1]))
        log = (tmp_path / f"{name}.log").open("wb")
        workers.append(
            subprocess.Popen([*CLI, *command], env=env(name), stdout=log, stderr=subprocess.STDOUT)
        )
    api_command = local(services["api"]["command"])
    api_command[api_command.index("--broker") + 1] = kafka.url
    api, url = start(*api_command, **{"namespace": namespace})
    cluster = Cluster(kafka, tmp_path, namespace=namespace)  # to produce and follow
    try:
        cluster.produce(CAMPAIGN)
        cluster.wait_caught_up()
        # the API follows the workers' topics
        top = eventually(lambda: httpx.get(url + "scores").json()["top"] or None, timeout=60)
        assert top[0]["rank"] == 1
        assert "crm2stream_topic_end_offset" in httpx.get(url + "metrics").text
        wanted = dashboard_metrics()
        processed = 0.0
        deadline = time.monotonic() + 30
        for port in ports:
            while True:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as response:
                    text = response.read().decode()
                if "crm2stream_consumer_lag_records{" in text or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            missing = {m for m in wanted if m not in text}
            assert not missing, f"worker on {port} does not expose {missing}"
            processed += sum(
                float(line.rsplit(" ", 1)[1])
                for line in text.splitlines()
                if line.startswith("crm2stream_events_total{")
            )
        assert processed == len(CAMPAIGN)
    finally:
        api.terminate()
        api.wait(timeout=30)
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)
        cluster.close()
