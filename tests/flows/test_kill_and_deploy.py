"""Real processes: a scheduled deployment on a real local Prefect server.

A build SIGKILLed at every stage and rerun is tests/faults/test_build_faults.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from pipeline.validate import load_manifest
from tests.flows.conftest import build_cfg
from tests.servers import prefect_server, stop

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


def test_scheduled_deployment_on_a_real_local_server(build_sources, tmp_path):
    env = _env(tempfile.mkdtemp(prefix="pf-srv-"))
    served = None
    with prefect_server(env) as api:
        try:
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
            stop(served)


def test_prefect_yaml_declares_a_cron_deployment():
    spec = yaml.safe_load((Path(__file__).resolve().parents[2] / "prefect.yaml").read_text())
    dep = spec["deployments"][0]
    assert dep["entrypoint"] == "flows/build.py:build_dataset"
    assert dep["schedules"][0]["cron"]
