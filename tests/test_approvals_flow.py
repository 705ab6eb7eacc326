"""The approvals helper under Prefect: pause, refuse and audit, resume, apply; sweep defaults."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from prefect.client.orchestration import get_client
from sqlmodel import select

from tasks.approvals_io import resume_waiting_run
from tasks.db import approval_store
from tasks.db.engine import session
from tasks.db.models import AuditLog, Decision
from tests.approval_demo import cancellation_needing_ops
from tests.helpers import free_port, start_in_thread
from tests.sandbox_fixtures import place, served_sandbox, wait_cancelled

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _wait_paused(url, aid, refusals, timeout=60):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        a = approval_store.get_approval(url, aid)
        if a and a.flow_run_id and a.refusals == refusals:
            with get_client(sync_client=True) as c:
                state = c.read_flow_run(a.flow_run_id).state
            if state and state.is_paused():
                return a
        time.sleep(0.3)
    raise AssertionError(f"{aid} never paused")


@pytest.fixture
def world(aftercart_env, monkeypatch):
    smtp = free_port()
    with served_sandbox(smtp_port=smtp) as s:
        monkeypatch.setenv("AFTERCART_SHOPIFY_ADMIN_URL", f"{s.url}/admin/api/2026-10/graphql.json")
        monkeypatch.setenv("AFTERCART_SHOPIFY_ACCESS_TOKEN", "tok")
        monkeypatch.setenv("AFTERCART_SMTP_PORT", str(smtp))
        yield s, aftercart_env


def test_pause_refuse_audit_then_resume_and_apply(world):
    s, url = world
    oid = place(s.sandbox)
    name = s.sandbox.world.orders[oid].name
    thread, result = start_in_thread(cancellation_needing_ops, url, oid, name)
    aid = f"cancellation:{oid}:c1"
    a = _wait_paused(url, aid, 0)
    assert (a.role, a.status, a.allowed_decisions) == ("ops", "pending", ["approve", "reject"])
    with get_client(sync_client=True) as c:
        assert c.read_flow_run(a.flow_run_id).name == f"cancellation-review {name}"
    # support may not decide for ops: refused, audited, and the run waits again
    resume_waiting_run(a.flow_run_id, {"decision": "approve", "approver": "support@sandbox.test", "note": ""})
    _wait_paused(url, aid, 1)
    # ops rejecting without a note: refused too
    resume_waiting_run(a.flow_run_id, {"decision": "reject", "approver": "ops@sandbox.test", "note": " "})
    _wait_paused(url, aid, 2)
    assert s.sandbox.world.orders[oid].cancelled_at is None  # nothing applied yet
    resume_waiting_run(a.flow_run_id, {"decision": "approve", "approver": "ops@sandbox.test", "note": "ok"})
    thread.join(60)
    assert result["value"] == {"decision": "approve", "approver": "ops@sandbox.test", "by_policy": False}
    assert wait_cancelled(s.sandbox, oid, timeout=5)
    with session(url) as db:
        audit = [(r.actor, r.action) for r in db.exec(select(AuditLog).order_by(AuditLog.id)).all()]
        decisions = db.exec(select(Decision).where(Decision.sop == "approvals")).all()
    assert audit == [("aftercart", "approval.requested"), ("support@sandbox.test", "approval.refused"),
                     ("ops@sandbox.test", "approval.refused"), ("ops@sandbox.test", "approval.decided"),
                     ("aftercart", "approval.effect")]
    assert [(d.outcome, d.actor) for d in decisions] == [("approve", "ops@sandbox.test")]
    # the ops approver was told once, with a link to the run
    mails = s.sandbox.mailbox.find(to="ops@sandbox.test")
    assert len(mails) == 1 and a.flow_run_id in mails[0].text
    assert s.sandbox.ops.applied.count(("tagsAdd", oid)) == 1


def test_sweep_default_resumes_the_waiting_run_with_the_policy_decision(world):
    from flows.approval_sweep import sweep_approval_deadlines

    s, url = world
    oid = place(s.sandbox)
    thread, result = start_in_thread(cancellation_needing_ops, url, oid, s.sandbox.world.orders[oid].name)
    aid = f"cancellation:{oid}:c1"
    _wait_paused(url, aid, 0)
    now = datetime.now(timezone.utc)
    assert sweep_approval_deadlines(now=now + timedelta(hours=1, minutes=1))["changed"] == 1  # ops -> management
    assert approval_store.get_approval(url, aid).role == "management"
    assert len(s.sandbox.mailbox.find(to="owner@sandbox.test")) == 1  # the new role is told
    sweep_approval_deadlines(now=now + timedelta(hours=26))  # management's 24 h pass: the default
    thread.join(60)
    assert result["value"] == {"decision": "reject", "approver": "aftercart:deadline", "by_policy": True}
    assert s.sandbox.world.orders[oid].cancelled_at is None
    a = approval_store.get_approval(url, aid)
    assert (a.status, a.decision) == ("defaulted", "reject")
