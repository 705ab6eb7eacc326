"""A deployment run suspends (no process held), the CLI resumes it, and the run re-runs from the
top without repeating any side effect made before the wait."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from typer.testing import CliRunner

from aftercart.cli import app
from tasks.db import approval_store
from tests.helpers import free_port, wait_for
from tests.sandbox_fixtures import place, served_sandbox

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.usefixtures("prefect_harness"), pytest.mark.slow]


def _children(pid: int) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if int((p / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _state(run_id):
    with get_client(sync_client=True) as c:
        return c.read_flow_run(run_id).state




def test_suspended_run_holds_no_process_and_repeats_no_effect(aftercart_env, monkeypatch):
    smtp = free_port()
    with served_sandbox(smtp_port=smtp) as s:
        env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), AFTERCART_DATABASE_URL=aftercart_env,
                   AFTERCART_SHOPIFY_ADMIN_URL=f"{s.url}/admin/api/2026-10/graphql.json",
                   AFTERCART_SHOPIFY_ACCESS_TOKEN="tok", AFTERCART_SMTP_PORT=str(smtp),
                   PREFECT_SERVER_ANALYTICS_ENABLED="false")
        log = open(Path(os.environ.get("AFTERCART_TEST_LOG_DIR", "/tmp")) / "approval-demo-runner.log", "w")
        runner = subprocess.Popen([sys.executable, "-m", "tests.approval_demo"], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, text=True)
        try:
            oid = place(s.sandbox)
            name = s.sandbox.world.orders[oid].name
            run = wait_for(lambda: _try_run(oid, name, aftercart_env), 60, "the deployment to be served")
            aid = f"cancellation:{oid}:c1"
            wait_for(lambda: (_state(run.id).name == "Suspended"), 90, "the run to suspend")
            # no process holds the waiting run: the runner has no flow-run child left
            wait_for(lambda: not _children(runner.pid), 30, "the flow-run process to exit")
            assert approval_store.get_approval(aftercart_env, aid).flow_run_id == str(run.id)
            assert s.sandbox.ops.applied.count(("tagsAdd", oid)) == 1
            # an outsider is refused by the CLI, audited, and the run still waits
            monkeypatch.setenv("AFTERCART_DATABASE_URL", aftercart_env)
            out = CliRunner().invoke(app, ["approvals", "approve", aid, "--as", "stranger@example.com"])
            assert out.exit_code == 2 and "not an approver" in out.output
            assert _state(run.id).name == "Suspended"
            listed = CliRunner().invoke(app, ["approvals", "list", "--role", "ops"], env={"COLUMNS": "200"})
            assert aid in listed.output
            ok = CliRunner().invoke(app, ["approvals", "approve", aid, "--as", "ops@sandbox.test", "--note", "fine"])
            assert ok.exit_code == 0, ok.output
            final = wait_for(lambda: (st := _state(run.id)).is_final() and st, 120, "the resumed run to finish")
            assert final.is_completed(), final
        finally:
            runner.terminate()
            runner.wait(timeout=30)
        applied = s.sandbox.ops.applied
        assert applied.count(("tagsAdd", oid)) == 1  # made before the wait, not again after the re-run
        assert applied.count(("cancel", oid)) == 1 and s.sandbox.world.orders[oid].cancelled_at is not None
        assert len(s.sandbox.mailbox.find(to="ops@sandbox.test")) == 1  # told once, though the flow ran twice
        a = approval_store.get_approval(aftercart_env, aid)
        assert (a.status, a.decision, a.decided_by, a.note) == ("approved", "approve", "ops@sandbox.test", "fine")
        shown = CliRunner().invoke(app, ["approvals", "show", aid])
        assert "approval.refused" in shown.output and "approval.decided" in shown.output


def _try_run(oid, name, db_url):
    try:
        return run_deployment("approval-demo/approval-demo", parameters={
            "database_url": db_url, "order_id": oid, "order_name": name}, timeout=0)
    except Exception:
        return None
