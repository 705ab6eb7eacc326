"""Flows under Prefect's test harness, against the sandbox over loopback HTTP."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from config.policy_loader import load_policy
from intake.app import create_app as create_intake
from sandbox.app import Sandbox, SandboxConfig, create_app as create_sandbox
from tasks.db import store
from tasks.db.engine import session
from tasks.db.models import Approval, AuditLog, Decision, Order, WebhookDelivery
from tests.helpers import free_port, reserve_port, serve_app

pytestmark = pytest.mark.usefixtures("prefect_harness")
SECRET = "flow-test-secret"


@pytest.fixture
def world(aftercart_env, monkeypatch):
    """Sandbox and intake on loopback, the sandbox's webhooks pointed at the intake."""
    intake = reserve_port()  # held until its server starts: the sandbox's webhooks name it first
    intake_port, smtp = intake.getsockname()[1], free_port()
    sandbox = Sandbox(SandboxConfig(webhook_secret=SECRET, access_token="tok", retry_base=0.05, plan="plus",
                                    webhook_address=f"http://127.0.0.1:{intake_port}/webhooks/shopify", smtp_port=smtp))
    monkeypatch.setenv("AFTERCART_SMTP_PORT", str(smtp))
    with serve_app(create_sandbox(sandbox)) as sandbox_url, \
            serve_app(create_intake(aftercart_env, SECRET, emit=None), sock=intake):
        monkeypatch.setenv("AFTERCART_SHOPIFY_ADMIN_URL", f"{sandbox_url}/admin/api/2026-10/graphql.json")
        monkeypatch.setenv("AFTERCART_SHOPIFY_ACCESS_TOKEN", "tok")
        yield sandbox, aftercart_env


def inbox(url):
    with session(url) as s:
        return list(s.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)).all())


def test_sandbox_orders_reach_the_store_and_the_drain_processes_them(world):
    from flows.intake_drain import drain_inbox

    from sandbox.catalogue import FAULTY

    sandbox, url = world
    sandbox.generate(24)
    a1, a2, city, prov, zp, cc = FAULTY["zip_not_found"]
    sandbox.world.create_order({"customer": {"email": "x@example.com"}, "line_items": [{"sku": "MUG", "quantity": 1}],
                                "shipping_address": {"name": "Xi Lu", "address1": a1, "address2": a2, "city": city,
                                                     "province_code": prov, "zip": zp, "country_code": cc}})
    assert sandbox.sender.wait_idle(20)
    assert [r.status for r in inbox(url)] == ["accepted"] * 25
    confirmations = sum(1 for o in sandbox.world.orders.values() if o.email and "ac:manual" not in o.tags)
    assert drain_inbox(batch_size=10) == {"processed": 25, "stage_changes": 0, "addresses_judged": 25,
                                          "messages": confirmations}
    assert {r.status for r in inbox(url)} == {"processed"}
    assert drain_inbox() == {"processed": 0, "stage_changes": 0, "addresses_judged": 0, "messages": 0}
    mailed = [m.headers["X-Aftercart-Template"] for m in sandbox.mailbox.messages]
    assert mailed.count("order_confirmation") == confirmations
    # one address decision per order, the verdict of the pure function, with the policy that made it
    from domain.address import check_address

    with session(url) as s:
        decisions = {d.subject: d for d in s.exec(select(Decision).where(Decision.sop == "address")).all()}
    assert len(decisions) == 25
    policy = load_policy()
    for o in sandbox.world.orders.values():
        d = decisions[f"order:{o.id}"]
        v = check_address(o.shipping_address)
        assert (d.outcome, d.reasons[: len(v.reasons)]) == (v.verdict, list(v.reasons))
        assert (d.policy_version, d.policy_hash) == (policy.version, policy.content_hash)
        assert d.inputs["action"] == ("accept" if v.verdict == "valid" else "hold_and_ask_customer")
    assert {d.outcome for d in decisions.values()} >= {"valid", "invalid"}  # the generator's faulty share


def test_drain_moves_stage_from_fulfillment_events(aftercart_env):
    from flows.intake_drain import drain_inbox
    from domain.orders import order_facts

    payload = {"id": 77, "name": "#77", "updated_at": "2026-11-27T10:00:00Z"}
    store.upsert_order(aftercart_env, "shop", order_facts(payload), payload)
    for i, status in enumerate(["in_transit", "confirmed", "delivered"]):  # "confirmed" arrives late
        store.add_delivery(aftercart_env, shop="shop", webhook_id=f"f{i}", topic="fulfillments/update",
                           status="accepted", order_id=77,
                           body=json.dumps({"order_id": 77, "shipment_status": status}))
    assert drain_inbox()["stage_changes"] == 1
    assert store.get_order(aftercart_env, 77).stage == "delivered"


def test_reconciliation_feeds_what_the_inbox_missed(world, monkeypatch):
    from flows.reconciliation import reconcile_orders

    sandbox, url = world
    sandbox.sender.subscriptions.clear()  # webhooks lost: nothing reaches the intake
    placed = sandbox.generate(130)  # more than one page of 100
    first = reconcile_orders()
    assert first == {"read": 130, "missed": 130, "fed": 130}
    rows = inbox(url)
    assert len(rows) == 130 and {r.topic for r in rows} == {"orders/updated"}
    with session(url) as s:
        assert len(s.exec(select(Order)).all()) == 130
    # the same path: the stored snapshot is what a webhook would have stored
    o = store.get_order(url, placed[0].id)
    assert o.name == placed[0].name and o.snapshot["source"] == "reconciliation"
    # nothing new: nothing fed; one order changes: only it is fed
    assert reconcile_orders()["fed"] == 0
    with sandbox.world.lock:
        placed[3].tags = ["ac:manual"]
        sandbox.world.touch(placed[3])
    again = reconcile_orders()  # re-reads the overlap window, feeds only the changed order
    assert (again["missed"], again["fed"]) == (1, 1)
    assert store.get_order(url, placed[3].id).tags == ["ac:manual"]


def _approval(url, role, deadline, id_="a1"):
    with session(url) as s:
        s.add(Approval(id=id_, kind="cancellation", order_id=1, order_name="#1001", role=role, deadline=deadline))
        s.commit()


@pytest.fixture
def mailbox(aftercart_env, monkeypatch):
    """The sandbox's SMTP mailbox, where approvers are told of escalations."""
    from tests.sandbox_fixtures import served_sandbox

    smtp = free_port()
    with served_sandbox(smtp_port=smtp) as served:
        monkeypatch.setenv("AFTERCART_SMTP_PORT", str(smtp))
        yield served.sandbox.mailbox


def test_deadline_sweep_escalates_then_defaults(aftercart_env, mailbox):
    from flows.approval_sweep import sweep_approval_deadlines

    url = aftercart_env
    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
    _approval(url, "support", t0 + timedelta(hours=4))
    out = sweep_approval_deadlines(now=t0 + timedelta(hours=3))
    assert (out["overdue"], out["changed"]) == (0, 0)
    assert sweep_approval_deadlines(now=t0 + timedelta(hours=4, minutes=5))["changed"] == 1
    with session(url) as s:
        a = s.get(Approval, "a1")
    assert (a.role, a.escalations, a.status) == ("ops", 1, "pending")
    assert store.as_utc(a.deadline) == t0 + timedelta(hours=5, minutes=5)
    sweep_approval_deadlines(now=t0 + timedelta(hours=6))
    sweep_approval_deadlines(now=t0 + timedelta(hours=31))
    with session(url) as s:
        a = s.get(Approval, "a1")
        audit = [r.action for r in s.exec(select(AuditLog).order_by(AuditLog.id)).all()]
        decisions = s.exec(select(Decision)).all()
    assert (a.role, a.status, a.decision, a.decided_by) == ("management", "defaulted", "reject", "aftercart:deadline")
    assert audit == ["approval.escalate", "approval.escalate", "approval.default_decision"]
    assert [len(mailbox.find(to=a)) for a in ("ops@sandbox.test", "owner@sandbox.test")] == [1, 1]
    policy = load_policy()
    assert {(d.policy_version, d.policy_hash) for d in decisions} == {(policy.version, policy.content_hash)}


def test_sweep_never_overrides_a_person(aftercart_env):
    from flows.approval_sweep import sweep_approval_deadlines

    url = aftercart_env
    t0 = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
    _approval(url, "support", t0, id_="a2")
    with session(url) as s:
        a = s.get(Approval, "a2")
        a.status, a.decision, a.decided_by = "approved", "approve", "support@sandbox.test"
        s.add(a)
        s.commit()
    assert sweep_approval_deadlines(now=t0 + timedelta(days=2))["changed"] == 0


def test_metrics_report_counts_the_store(world):
    from flows.metrics import metrics_report

    sandbox, url = world
    sandbox.generate(5)
    assert sandbox.sender.wait_idle(20)
    totals = metrics_report()
    assert totals["inbox"] == 5 and totals["orders"] == 5


def test_a_batch_of_exception_runs_is_created_a_few_at_a_time_in_the_order_asked_and_once(aftercart_env):
    """launch_many: one run per exception, named after its order, ids in the order asked; the same
    idempotency keys again return the runs already made (a drain re-run starts nothing twice)."""
    from prefect.client.orchestration import get_client

    from flows.address_validation import address_review
    from tasks.launch import launch_many

    address_review.to_deployment(name="address-review").apply()
    runs = [({"order_id": 9000 + i, "order_name": f"#L{i}"}, f"address-review #L{i}", f"launch-test:{i}")
            for i in range(12)]
    ids = launch_many("address-review/address-review", runs)
    again = launch_many("address-review/address-review", runs[::-1])
    assert len(set(ids)) == 12 and again == ids[::-1]
    with get_client(sync_client=True) as c:
        made = [c.read_flow_run(i) for i in ids]
    assert [r.name for r in made] == [f"address-review #L{i}" for i in range(12)]
    assert [r.parameters["order_id"] for r in made] == [9000 + i for i in range(12)]
