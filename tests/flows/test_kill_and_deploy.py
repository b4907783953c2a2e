"""Real processes: a scheduled deployment on a real local Prefect server.

A build SIGKILLed at every stage and rerun is tests/faults/test_build_faults.py.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from pipeline.validate import load_manifest
from tests.flows.conftest import build_cfg

LW = [sys.executable, "-m", "pipeline"]


def _env(home: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        {
            "PREFECT_HOME": home,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
            "HF_HUB_OFFLINE": "1",
            **extra,
        }
    )
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_scheduled_deployment_on_a_real_local_server(build_sources, tmp_path):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _env(tempfile.mkdtemp(prefix="pf-srv-"))
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    served = None
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise RuntimeError("prefect server did not start")
        cfg = tmp_path / "b.yaml"
        cfg.write_text(yaml.safe_dump(build_cfg(build_sources, tmp_path / "scheduled")))
        client_env = {**env, "PREFECT_API_URL": api, "PREFECT_RUNNER_POLL_FREQUENCY": "2"}
        served = subprocess.Popen(
            [*LW, "serve", str(cfg), "--cron", "0 3 * * *", "--name", "nightly"],
            env=client_env,
            stdout=open(tmp_path / "serve.log", "w"),  # noqa: SIM115
            stderr=subprocess.STDOUT,
        )
        trigger = (
            "import time\n"
            "from prefect.deployments import run_deployment\n"
            "from prefect.client.orchestration import get_client\n"
            "for _ in range(120):\n"
            "    try:\n"
            "        with get_client(sync_client=True) as c:\n"
            "            d = c.read_deployment_by_name('build-dataset/nightly'); break\n"
            "    except Exception: time.sleep(1)\n"
            "print('CRON', d.schedules[0].schedule.cron)\n"
            "run = run_deployment('build-dataset/nightly', timeout=400)\n"
            "print('STATE', run.state.type.value)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", trigger], env=client_env, capture_output=True, text=True, timeout=500
        )
        assert "CRON 0 3 * * *" in out.stdout, out.stdout + out.stderr[-2000:]
        assert "STATE COMPLETED" in out.stdout, out.stdout + (tmp_path / "serve.log").read_text()[-4000:]
        assert load_manifest(tmp_path / "scheduled" / "shards").rows > 0
    finally:
        for p in (served, server):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()


def test_prefect_yaml_declares_a_cron_deployment():
    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text())
    dep = spec["deployments"][0]
    assert dep["entrypoint"] == "flows/build.py:build_dataset"
    assert dep["schedules"][0]["cron"]
