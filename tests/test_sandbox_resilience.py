"""Throttling, injected faults, webhook retries and the mailbox, over loopback HTTP."""

from __future__ import annotations

import json
import time

import pytest

from intake.app import create_app as create_intake
from sandbox.cost import Plan
from tasks.clients.mailer import Mailer
from tests.helpers import free_port, serve_app
from tests.sandbox_fixtures import place, served_sandbox


def test_steady_state_queries_are_paced_below_one_percent_throttled():
    """1,000 queries against a bucket far smaller than their total cost: the client paces itself
    from throttleStatus, so fewer than 1% are THROTTLED."""
    with served_sandbox() as s:
        s.sandbox.api.bucket.plan = Plan(maximum=200.0, restore_rate=2000.0)  # fast, so the test is quick
        oid = place(s.sandbox)
        for _ in range(1000):
            s.shopify.fulfillment_orders(oid)
        stats = s.shopify.stats
        total_cost = stats.cost_points
    assert stats.calls - stats.retries == 1000
    assert total_cost > 200 * 5  # far more than one bucket: this is steady state, not a burst
    assert stats.throttled / 1000 < 0.01, stats


def test_faults_throttling_and_5xx_every_call_completes_no_mutation_duplicated():
    with served_sandbox() as s:
        s.http.post(f"{s.url}/sandbox/faults", json={"seed": 3, "rules": {"*": {"throttled": 0.2, "http5xx": 0.05}}})
        orders = [place(s.sandbox) for _ in range(40)]
        for n, oid in enumerate(orders):
            fo = s.shopify.fulfillment_orders(oid)[0]
            s.shopify.add_tags(oid, [f"t{n}"])
            s.shopify.hold(oid, fo["id"], "INCORRECT_ADDRESS", "ac:hold:address")
            s.shopify.refund(oid, "1.00", "shopify_payments", f"refund:{oid}:1")
        injected = s.http.get(f"{s.url}/sandbox/faults").json()["injected"]
        applied = s.sandbox.ops.applied
    assert injected["throttled"] > 20 and injected["http5xx"] > 3
    for oid in orders:
        assert applied.count(("tagsAdd", oid)) == 1
        assert applied.count(("hold", oid)) == 1
        assert applied.count(("refund", oid)) == 1


def test_lost_replies_never_double_a_hold_a_refund_or_a_cancellation():
    with served_sandbox() as s:
        s.http.post(f"{s.url}/sandbox/faults", json={"seed": 5, "rules": {
            "FulfillmentOrderHold": {"lost_reply": 0.5}, "RefundCreate": {"lost_reply": 0.5},
            "OrderCancel": {"lost_reply": 0.5}, "OrderEditAddVariant": {"lost_reply": 0.5},
            "OrderEditCommit": {"lost_reply": 0.5}}})
        orders = [place(s.sandbox) for _ in range(12)]
        bottle = s.sandbox.world.variant_by_sku("BOTTLE-500ML")[1]
        for oid in orders:
            fo = s.shopify.fulfillment_orders(oid)[0]
            s.shopify.hold(oid, fo["id"], "OTHER", "ac:hold:approval")
            s.shopify.refund(oid, "2.00", "shopify_payments", f"refund:{oid}:partial")
            s.shopify.edit_order(oid, add_variants=[(f"gid://shopify/ProductVariant/{bottle.id}", 1)])
        for oid in orders[:6]:
            s.shopify.cancel_order(oid, refund=False)
        lost = s.http.get(f"{s.url}/sandbox/faults").json()["injected"]["lost_reply"]
        applied = s.sandbox.ops.applied
        world = s.sandbox.world
    assert lost >= 10
    for oid in orders:
        assert applied.count(("hold", oid)) == 1 and applied.count(("refund", oid)) == 1
        assert applied.count(("edit", oid)) == 1
        assert [li.sku for li in world.orders[oid].line_items].count("BOTTLE-500ML") == 1
    for oid in orders[:6]:
        assert applied.count(("cancel", oid)) == 1


def test_http_429_with_retry_after_is_honoured():
    with served_sandbox() as s:
        s.http.post(f"{s.url}/sandbox/faults", json={"seed": 2, "retry_after": 0.2, "rules": {"*": {"http429": 0.5}}})
        waits = []
        s.shopify.sleep = lambda sec: waits.append(sec)
        oid = place(s.sandbox)
        for _ in range(20):
            s.shopify.order(oid)
    assert s.shopify.stats.throttled >= 5 and 0.2 in waits


def test_throttled_answer_can_be_http_429():
    with served_sandbox(throttle_status=429) as s:
        s.sandbox.api.bucket.plan = Plan(maximum=5.0, restore_rate=0.001)
        s.sandbox.api.bucket._available = 0.0
        r = s.http.post(f"{s.url}/admin/api/2026-10/graphql.json", headers={"X-Shopify-Access-Token": "tok"},
                        json={"query": "{ orders(first: 1) { nodes { id } } }"})
    assert r.status_code == 429 and r.json()["errors"][0]["extensions"]["code"] == "THROTTLED"
    assert "data" not in r.json()


def test_signed_webhooks_verify_in_the_intake_and_rejected_deliveries_are_retried(sqlite_url):
    port = free_port()
    address = f"http://127.0.0.1:{port}/webhooks/shopify"
    with served_sandbox(webhook_secret="right", webhook_address=address, retry_base=0.05) as s:
        with serve_app(create_intake(sqlite_url, "wrong", emit=None), port=port):
            place(s.sandbox)
            deadline = time.monotonic() + 10
            while s.sandbox.sender.stats.failed_attempts < 3 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert s.sandbox.sender.stats.failed_attempts >= 3 and s.sandbox.sender.stats.delivered == 0
            statuses = {e["status"] for e in s.sandbox.sender.stats.log}
            assert statuses == {401}
        with serve_app(create_intake(sqlite_url, "right", emit=None), port=port):
            assert s.sandbox.sender.wait_idle(20)
        assert s.sandbox.sender.stats.delivered == 1 and s.sandbox.sender.stats.gave_up == 0


def test_duplicate_and_out_of_order_deliveries(sqlite_url):
    from sqlmodel import select

    from tasks.db.engine import session
    from tasks.db.models import WebhookDelivery

    port = free_port()
    with served_sandbox(webhook_secret="k", webhook_address=f"http://127.0.0.1:{port}/webhooks/shopify",
                        duplicate_rate=0.5, reorder_rate=0.5) as s, \
            serve_app(create_intake(sqlite_url, "k", emit=None), port=port):
        ids = [place(s.sandbox) for _ in range(20)]
        for oid in ids:
            s.shopify.add_tags(oid, ["ac:manual"])
        assert s.sandbox.sender.wait_idle(20)
        dups = s.sandbox.sender.stats.duplicates_sent
    with session(sqlite_url) as db:
        rows = db.exec(select(WebhookDelivery)).all()
    assert dups > 5
    assert len(rows) == len({(r.shop, r.webhook_id) for r in rows}) == 40  # one row per distinct delivery
    from tasks.db import store

    assert all(store.get_order(sqlite_url, oid).tags == ["ac:manual"] for oid in ids)  # newest wins


def test_mailer_sends_to_the_sandbox_mailbox():
    smtp_port = free_port()
    with served_sandbox(smtp_port=smtp_port) as s:
        mailer = Mailer("127.0.0.1", smtp_port, "orders@sandbox.test")
        mailer.send("dana@example.com", "Your order #1001", "Thanks!", "<p>Thanks!</p>",
                    headers={"X-Aftercart-Template": "order_confirmation", "X-Aftercart-Order": "#1001"})
        msgs = s.http.get(f"{s.url}/mailbox/messages", params={"to": "dana@example.com"}).json()["messages"]
    assert len(msgs) == 1
    m = msgs[0]
    assert m["subject"] == "Your order #1001" and m["text"].strip() == "Thanks!" and "<p>" in m["html"]
    assert m["headers"]["X-Aftercart-Template"] == "order_confirmation"


def test_threepl_pushes_signed_status_changes_and_advances_on_the_simulated_clock():
    from datetime import datetime, timedelta, timezone

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from intake.hmac_sign import verify
    from sandbox.app import Sandbox, SandboxConfig
    from sandbox.clock import Clock

    pushes = []

    async def receive(request):
        raw = await request.body()
        pushes.append((verify("sandbox-3pl-secret", raw, request.headers.get("x-3pl-signature")), json.loads(raw)))
        return JSONResponse({})

    with serve_app(Starlette(routes=[Route("/3pl", receive, methods=["POST"])])) as hook:
        clock = Clock(datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc))
        sb = Sandbox(SandboxConfig(threepl_push_url=f"{hook}/3pl",
                                   threepl_auto_minutes={"received": 10, "picking": 15, "packed": 20}), clock=clock)
        try:
            oid = place(sb)
            sb.threepl.receive({"order_id": oid, "lines": [{"sku": "MUG", "quantity": 1}]})
            assert sb.threepl.tick() == 0
            clock.advance(timedelta(minutes=10))
            assert sb.threepl.tick() == 1 and sb.threepl.orders[oid].status == "picking"
            clock.advance(timedelta(minutes=15))
            assert sb.threepl.tick() == 1 and sb.threepl.orders[oid].status == "packed"
            clock.advance(timedelta(minutes=19))
            assert sb.threepl.tick() == 0  # 20 minutes in `packed` not yet over
            clock.advance(timedelta(minutes=1))
            assert sb.threepl.tick() == 1 and sb.threepl.orders[oid].status == "shipped"
            assert sb.world.orders[oid].fulfillment_status == "FULFILLED"
            with pytest.raises(ValueError):
                clock.set(datetime(2026, 11, 27, 8, 0, tzinfo=timezone.utc))  # time never goes backwards
        finally:
            sb.close()
    assert [p[1]["event"] for p in pushes] == ["received", "picking", "packed", "shipped"]
    assert all(ok for ok, _ in pushes)
    assert pushes[-1][1]["order"]["tracking_number"]


def test_slow_replies_are_slow_but_answered():
    with served_sandbox() as s:
        s.http.post(f"{s.url}/sandbox/faults", json={"slow_seconds": 0.3, "rules": {"OrderById": {"slow": 1.0}}})
        oid = place(s.sandbox)
        t0 = time.monotonic()
        assert s.shopify.order(oid)["name"].startswith("#")
        assert time.monotonic() - t0 >= 0.3


def test_threepl_pushes_are_retried_in_order_when_the_receiver_is_briefly_down():
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from sandbox.app import Sandbox, SandboxConfig

    got, calls = [], []

    async def receive(request):
        calls.append(1)
        if len(calls) <= 2:  # busy (a locked database), then fine
            return JSONResponse({"error": "busy"}, status_code=503)
        got.append(json.loads(await request.body())["event"])
        return JSONResponse({})

    with serve_app(Starlette(routes=[Route("/3pl", receive, methods=["POST"])])) as hook:
        sb = Sandbox(SandboxConfig(threepl_push_url=f"{hook}/3pl"))
        try:
            oid = place(sb)
            sb.threepl.receive({"order_id": oid, "lines": [{"sku": "MUG", "quantity": 1}]})
            sb.threepl.advance(oid, "picking")
            assert sb.threepl.wait_idle(20)
        finally:
            sb.close()
    assert got == ["received", "picking"] and len(calls) == 4 and sb.threepl.dropped_pushes == 0
