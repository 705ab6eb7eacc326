"""End to end: `aftercart up` from the command line, over loopback, stopped with Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"intake-drain", "reconciliation", "approval-deadline-sweep", "sop-metrics"}




@pytest.mark.slow
def test_up_serves_every_deployment_and_sandbox_orders_produce_runs(tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERCART_"))}
    ports = {k: free_port() for k in ("PREFECT", "SANDBOX", "INTAKE")}
    env.update({f"AFTERCART_{k}_PORT": str(v) for k, v in ports.items()})
    env.update(AFTERCART_DATA_DIR=str(data), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    exe = Path(sys.executable).parent / "aftercart"
    proc = subprocess.Popen([str(exe), "up", "--orders-per-minute", "120", "--timeout", "150"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        run = wait_for(lambda: (data / "run.json").exists() and json.loads((data / "run.json").read_text()), 170,
                    "aftercart up to be ready")
        api = run["urls"]["prefect_api"]
        assert api == f"http://127.0.0.1:{ports['PREFECT']}/api"
        assert httpx.get(f"http://127.0.0.1:{ports['PREFECT']}/", timeout=5).status_code == 200  # the UI
        deployments = httpx.post(f"{api}/deployments/filter", json={}, timeout=10).json()
        assert NAMES <= {d["name"] for d in deployments}
        by_name = {d["name"]: d for d in deployments}
        assert by_name["reconciliation"]["schedules"][0]["schedule"]["cron"] == "*/10 * * * *"
        assert by_name["approval-deadline-sweep"]["schedules"][0]["schedule"]["cron"] == "*/5 * * * *"
        automations = httpx.post(f"{api}/automations/filter", json={}, timeout=10).json()
        assert any("aftercart.inbox.pending" in a["trigger"]["expect"] for a in automations)

        def processed():
            with sqlite3.connect(data / "aftercart.db") as c:
                return c.execute("select count(*) from webhook_inbox where status = 'processed'").fetchone()[0]

        def completed_drains():
            runs = httpx.post(f"{api}/flow_runs/filter", timeout=10,
                              json={"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}}).json()
            return [r for r in runs if r["name"].startswith("drain ")]

        wait_for(lambda: processed() >= 3 and completed_drains(), 90, "sandbox orders drained by a deployment run")
        status = subprocess.run([str(exe), "status"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert status.returncode == 0, status.stdout
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    for name, child in run["children"].items():
        with pytest.raises(ProcessLookupError):
            os.kill(child["pid"], 0)
    assert "stopping prefect-server" in out and not (data / "run.json").exists()
