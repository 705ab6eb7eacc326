"""A deployment run suspends (no process held), the CLI resumes it, and the run re-runs from the
top without repeating any side effect made before the wait; Prefect's zombie automation leaves
waiting runs alone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.settings import PREFECT_API_URL
from sqlmodel import select
from typer.testing import CliRunner

from aftercart.cli import app
from config.policy_loader import load_policy
from flows.cancellation_review import cancellation_review
from tasks.db import approval_store
from tasks.db.engine import session
from tasks.db.models import AuditLog
from tests.helpers import free_port, start_in_thread, wait_for
from tests.sandbox_fixtures import (at_the_warehouse, pending_approval, place, served_sandbox, templates_sent,
                                    wait_cancelled)

ROOT = Path(__file__).resolve().parents[1]
POLICY = load_policy()
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


def test_the_zombie_automation_is_installed_once(prefect_harness):
    from aftercart.automations import ZOMBIE_AUTOMATION, install_automations

    first, second = install_automations(), install_automations()
    assert first in ([ZOMBIE_AUTOMATION], []) and second == []  # (another test may have installed it)
    with get_client(sync_client=True) as c:
        [a] = c.read_automations_by_name(ZOMBIE_AUTOMATION)
    assert a.trigger.posture == "Proactive" and a.actions[0].state == "CRASHED"


def test_the_zombie_automation_leaves_runs_waiting_for_a_person_alone_and_is_brought_up_to_date(prefect_harness):
    """A run waiting for an approver sends no heartbeats (suspended: no process at all); the window
    must end there, or every approval older than 90 s is marked Crashed and cannot be resumed. An
    installation made with the older definition is updated in place."""
    from aftercart.automations import ZOMBIE_AUTOMATION, install_automations, zombie_automation

    install_automations()
    with get_client(sync_client=True) as c:
        [a] = c.read_automations_by_name(ZOMBIE_AUTOMATION)
        assert {"prefect.flow-run.Suspended", "prefect.flow-run.Paused"} <= set(a.trigger.expect)
        old = zombie_automation()
        old.trigger.expect = {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                              "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"}  # Prefect's documented one
        c.update_automation(a.id, old)
        assert "prefect.flow-run.Suspended" not in c.read_automations_by_name(ZOMBIE_AUTOMATION)[0].trigger.expect
    assert install_automations() == [f"{ZOMBIE_AUTOMATION} (updated)"]
    with get_client(sync_client=True) as c:
        [a] = c.read_automations_by_name(ZOMBIE_AUTOMATION)
    assert {"prefect.flow-run.Suspended", "prefect.flow-run.Paused"} <= set(a.trigger.expect)
    assert install_automations() == []


def test_a_suspended_review_resumed_by_the_cli_goes_straight_to_the_answer(sop_world):
    """The deployment run (served in-process, as `aftercart serve` does) suspends; the approver's
    decision resumes it and it re-runs from the top. The re-run does not decide, tag, tell, ask the
    3PL or notify again: those tasks ran once, before the wait (one decision row, one of each
    message), and the approval is applied once."""
    import asyncio
    from collections import Counter

    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from aftercart.runner import InProcessRunner
    from tasks.approvals_io import submit_decision
    from tasks.db.models import Decision

    s, url = sop_world
    sb = s.sandbox
    oid = at_the_warehouse(sb, url)
    with get_client(sync_client=True) as c:  # runs other tests left scheduled stay with the old deployment
        try:
            c.delete_deployment(c.read_deployment_by_name("cancellation-review/cancellation-review").id)
        except Exception:  # noqa: BLE001 - no earlier deployment
            pass
    r = InProcessRunner(limit=4, query_seconds=0.2, pause_on_shutdown=False,
                        in_process={"cancellation-review": cancellation_review})
    r.add_deployment(cancellation_review.to_deployment(name="cancellation-review"))
    thread, started = start_in_thread(asyncio.run, r.start())
    try:
        wait_for(lambda: getattr(r, "started", False) or "error" in started, 30, "the runner to start")
        run = run_deployment("cancellation-review/cancellation-review", timeout=0, parameters={
            "order_id": oid, "channel": "email", "reason": "changed my mind", "order_name": sb.world.orders[oid].name})

        def state():
            with get_client(sync_client=True) as c:
                return c.read_flow_run(run.id).state

        wait_for(lambda: state().name == "Suspended", 90, "the review to wait for ops")
        a = pending_approval(url, oid)
        assert a.flow_run_id == str(run.id)
        submit_decision(url, POLICY, a.id, "ops@sandbox.test", "approve", "pulled back", None)
        final = wait_for(lambda: (st := state()).is_final() and st, 90, "the resumed review to finish")
        assert final.is_completed(), final

        def tasks():
            with get_client(sync_client=True) as c:
                found = c.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])))
            return Counter(t.task_key.rsplit("-", 1)[0] for t in found)

        ran = wait_for(lambda: (t := tasks())["update_request"] and t, 30, "the task runs to be recorded")
    finally:
        r.execute_in_background(r.astop).result(timeout=60)
        thread.join(60)
    # before the wait, once each; the re-run after the decision repeats none of them
    assert {k: ran[k] for k in ("decide_request", "add_tags", "send_customer_message", "warehouse_has", "pull_back",
                                "open_approval", "send_mail", "note_waiting_run")} == {
        "decide_request": 1, "add_tags": 2, "send_customer_message": 2, "warehouse_has": 1, "pull_back": 1,
        "open_approval": 1, "send_mail": len(POLICY.approvals.roles["ops"].approvers), "note_waiting_run": 1}
    assert ran["load_order"] == 2 and ran["cancel_order"] == 1 and ran["decide"] == 1
    # after the answer: the approval row read once on each side of the wait, the tags swapped in one
    # request, and the decision's effect written with the request's closing
    assert ran["read_approval"] == 3 and "remove_tags" not in ran and "note_effect" not in ran
    with session(url) as db:
        assert len(db.exec(select(Decision).where(Decision.sop == "cancellation",
                                                  Decision.subject == f"order:{oid}")).all()) == 1
        effect = db.exec(select(AuditLog).where(AuditLog.action == "approval.effect",
                                                AuditLog.subject == f"approval:{a.id}")).one()
    assert effect.detail["decision"] == "approve" and effect.detail["cancelled"] is True
    o = sb.world.orders[oid]
    assert wait_cancelled(sb, oid) and "ac:cancel:approved" in o.tags and "ac:cancel:requested" not in o.tags
    assert templates_sent(sb, o.email) == ["cancellation_received", "cancellation_approved"]
    assert sb.ops.applied.count(("cancel", oid)) == 1
