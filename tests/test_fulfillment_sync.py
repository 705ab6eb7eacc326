"""SOP 7 over loopback: release to the 3PL after the edit window when nothing holds the order, the
3PL's events kept in step (a lost push caught by the sync), one signal in Shopify, the 3PL and the
helpdesk, and outages that delay the sync but lose and duplicate nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import os

import pytest
from sqlmodel import select

from domain.fulfillment import signals_of
from sandbox.faults import Faults
from tasks.db.engine import session
from tasks.db.models import Decision
from tests.helpers import free_port
from tests.test_customer_messages_flow import drain, place, templates_to, world  # noqa: F401 - the fixture

pytestmark = pytest.mark.usefixtures("prefect_harness")
LATER = timedelta(minutes=61)  # the edit window (60 min) has closed


def sync(at=None, **kw):
    from flows.fulfillment_sync import fulfillment_sync

    return fulfillment_sync(now=at or datetime.now(timezone.utc) + LATER, **kw)


def tag(sandbox, o, add=(), remove=()):
    with sandbox.world.lock:
        o.tags = sorted((set(o.tags) | set(add)) - set(remove))
        sandbox.world.touch(o)


def hold(sandbox, o, handle="ac:hold:address"):
    with sandbox.world.lock:
        return sandbox.ops.hold(o.fulfillment_orders[0].id, "INCORRECT_ADDRESS", handle, "test")


def test_release_after_the_window_holds_block_people_route_and_preorders_split(world):
    sandbox, url, _ = world
    ready = place(sandbox, "ready@example.com")
    held = place(sandbox, "held@example.com")
    vip = place(sandbox, "vip@example.com", tags=["ac:manual"])
    b2b = place(sandbox, "b2b@example.com", order_type="wholesale")
    mixed = place(sandbox, "mixed@example.com", line_items=[
        {"sku": "MUG-BLUE", "quantity": 2, "price": "18.00"},
        {"sku": "VASE-L", "quantity": 1, "price": "45.00", "preorder": True}])
    h = hold(sandbox, held)
    tag(sandbox, held, add=["ac:hold:address"])
    drain(sandbox)
    assert sync(at=datetime.now(timezone.utc))["released"] == 0  # every edit window still open
    out = sync()
    assert out["released"] == 2 and out["decisions"]["wait"] == 1 and out["decisions"]["person"] == 2
    at_3pl = sandbox.threepl.orders
    assert set(at_3pl) == {ready.id, mixed.id}
    assert at_3pl[mixed.id].lines == [{"sku": "MUG-BLUE", "quantity": 2}]  # the preorder part waits
    drain(sandbox)
    assert templates_to(sandbox, "ready@example.com")[-1] == "fulfillment_started"
    # the hold is released and the tag removed: the next sync sends it, and never sends one twice
    with sandbox.world.lock:
        sandbox.ops.release(held.fulfillment_orders[0].id, [h.id])
    tag(sandbox, held, remove=["ac:hold:address"])
    drain(sandbox)
    assert sync()["released"] == 1 and sync()["released"] == 0
    assert set(at_3pl) == {ready.id, mixed.id, held.id} and all(w.version == 1 for w in at_3pl.values())
    with session(url) as s:
        why = {d.subject: d for d in s.exec(select(Decision).where(Decision.sop == "fulfillment")).all()}
    assert "manual_routing" in why[f"order:{vip.id}"].reasons[0] and "wholesale" in why[f"order:{b2b.id}"].reasons[0]


def test_the_same_signals_in_shopify_the_3pl_and_the_helpdesk_for_500_orders(world):
    sandbox, url, _ = world
    orders = [place(sandbox, f"s{i}@example.com") for i in range(500)]
    signals = ["ac:edited:address", "ac:review:ops", "ac:cancel:requested", "ac:edited:items"]
    for i, o in enumerate(orders):
        if i % 3 == 0:
            tag(sandbox, o, add=[signals[i % 4], "vip-customer"])  # a merchant's own tag is left alone
    drain(sandbox)
    assert sync()["released"] == 500
    drain(sandbox)
    # tickets opened later, and signals that change after release
    for i, o in enumerate(orders[:100]):
        sandbox.tickets.append({"id": len(sandbox.tickets) + 1, "channel": "email", "customer": o.email,
                                "order": o.name, "text": "where is it?", "tags": ["vip"] if i % 2 else [],
                                "status": "open", "created_at": ""})
    for i, o in enumerate(orders):
        if i % 5 == 0:
            tag(sandbox, o, add=["ac:review:support"], remove=signals)
    drain(sandbox)
    out = sync()
    assert out["signals"]["flags"] > 0 and out["signals"]["tickets"] > 0
    for o in orders:  # every order, every system: the same signals
        want = signals_of(o.tags)
        assert signals_of(sandbox.threepl.orders[o.id].flags) == want, o.name
        for t in (t for t in sandbox.tickets if t["order"] == o.name):
            assert signals_of(t["tags"]) == want, (o.name, t)
    assert all("vip" in t["tags"] for t in sandbox.tickets[1::2][:50])  # non-signal tags kept
    again = sync()
    assert not again["signals"].get("flags") and not again["signals"].get("tickets")  # nothing left to do


def test_outages_delay_the_sync_but_lose_and_duplicate_nothing(world, monkeypatch):
    sandbox, url, smtp = world
    monkeypatch.setenv("AFTERCART_SHOPIFY_MAX_ATTEMPTS", "2")  # give up fast: the next sync is the retry
    monkeypatch.setenv("AFTERCART_THREEPL_MAX_ATTEMPTS", "2")
    orders = [place(sandbox, f"o{i}@example.com") for i in range(12)]
    drain(sandbox)
    # Shopify down for the reads: nothing released, nothing lost
    sandbox.faults = Faults.from_json({"rules": {"OrdersForRelease": {"http5xx": 1.0}}})
    first = sync()
    assert first["released"] == 0 and first["decisions"]["unread"] == 12
    sandbox.faults = Faults()
    # now the 3PL is down: reads work, releases fail and wait
    good = os.environ["AFTERCART_THREEPL_URL"]
    monkeypatch.setenv("AFTERCART_THREEPL_URL", f"http://127.0.0.1:{free_port()}")
    second = sync()
    assert second["released"] == 0 and second["decisions"]["release_failed"] == 12
    monkeypatch.setenv("AFTERCART_THREEPL_URL", good)
    # and its pushes are lost on the way: the sync's pull brings the events instead
    intake_push = sandbox.threepl.push_url
    sandbox.threepl.push_url = f"http://127.0.0.1:{free_port()}/webhooks/3pl"
    third = sync()
    assert third["released"] == 12 and third["missed_events"] == 12
    assert all(sandbox.threepl.orders[o.id].version == 1 for o in orders)
    from flows.intake_drain import drain_inbox

    drain_inbox()  # the pushes are still failing: what the drain sends comes from the sync's pull
    assert all(templates_to(sandbox, o.email) == ["order_confirmation", "fulfillment_started"] for o in orders)
    sandbox.threepl.push_url = intake_push  # the 3PL's retries get through late: duplicates, nothing new
    drain(sandbox)
    for o in orders:
        assert templates_to(sandbox, o.email) == ["order_confirmation", "fulfillment_started"]
    assert sync()["released"] == 0 and sync()["missed_events"] == 0



def test_a_new_version_during_picking_puts_the_stage_back_by_the_3pls_word_and_records_it(world):
    from tasks.db.models import AuditLog, Order

    sandbox, url, _ = world
    o = place(sandbox, "pick@example.com")
    drain(sandbox)
    assert sync()["released"] == 1
    sandbox.threepl.advance(o.id, "picking")
    drain(sandbox)
    with session(url) as s:
        assert s.get(Order, o.id).stage == "picking"
    sandbox.threepl.receive({"order_id": o.id, "lines": [{"sku": "MUG-BLUE", "quantity": 2}]})  # a new version
    drain(sandbox)  # the drain never moves a stage back on its own
    out = sync()
    assert out["reconciled"] == 1
    with session(url) as s:
        assert s.get(Order, o.id).stage == "released"
        [a] = s.exec(select(AuditLog).where(AuditLog.action == "stage.reconciled")).all()
    assert (a.detail["ours"], a.detail["theirs"], a.detail["recorded"]) == ("picking", "received", "released")
    assert sync()["reconciled"] == 0
