"""SOP 2 end to end for every cell of the stage table and each always-approval case: the same
expectations as the pure test (tests/test_order_edit_domain.py), asserted on the sandbox's Shopify
state, holds and mailbox."""

from __future__ import annotations

import pytest

from flows.order_edit import order_edit
from tasks.approvals_io import resume_waiting_run
from tasks.db.engine import session
from tests.helpers import start_in_thread
from tests.sandbox_fixtures import place
from tests.test_order_edit_domain import TABLE
from tests.test_order_edit_flow import _approvals, _at_warehouse, _holds, _templates

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def world(sop_world):
    return sop_world


LINES = [{"sku": "HOODIE-M", "quantity": 1, "price": "64.00"}, {"sku": "CAP", "quantity": 2, "price": "22.00"},
         {"sku": "STARTER-KI", "quantity": 1, "price": "129.00"}]
CELL_REQUESTS = {
    "contact_change": {"kind": "contact_change", "email": "new@example.com"},
    "address_unit_change": {"kind": "address_change", "address": {"address2": "Apt 7"}},
    "address_change": {"kind": "address_change", "address": {"address1": "350 5th Ave", "zip": "10118"}},
    "variant_swap": {"kind": "variant_swap", "line": "HOODIE-M", "sku": "HOODIE-L"},
    "quantity_decrease": {"kind": "quantity_change", "line": "CAP", "quantity": 1},
    "remove_item": {"kind": "remove_item", "line": "CAP"},
    "shipping_method_change": {"kind": "shipping_method_change", "shipping": "Express"},
    "add_item": {"kind": "add_item", "sku": "PEN", "quantity": 1},
    "quantity_increase": {"kind": "quantity_change", "line": "CAP", "quantity": 3},
    "bundle_line_edit": {"kind": "quantity_change", "line": "STARTER-KI", "quantity": 2},
}
CHANGED = {
    "contact_change": lambda o: o.email == "new@example.com",
    "address_unit_change": lambda o: o.shipping_address.get("address2") == "Apt 7",
    "address_change": lambda o: o.shipping_address.get("address1") == "350 5th Ave",
    "variant_swap": lambda o: any(li.sku == "HOODIE-L" and li.quantity == 1 for li in o.line_items),
    "quantity_decrease": lambda o: sum(li.quantity for li in o.line_items if li.sku == "CAP") == 1,
    "remove_item": lambda o: sum(li.quantity for li in o.line_items if li.sku == "CAP") == 0,
    "shipping_method_change": lambda o: o.shipping_method.lower() == "express",
    "add_item": lambda o: any(li.sku == "PEN" for li in o.line_items),
    "quantity_increase": lambda o: sum(li.quantity for li in o.line_items if li.sku == "CAP") == 3,
    "bundle_line_edit": lambda o: sum(li.quantity for li in o.line_items if li.sku == "STARTER-KI") == 2,
}


def _set_stage(sb, url, oid, stage):
    from datetime import datetime, timezone

    from tasks.db.models import Order

    if stage in ("released", "picking", "packed"):
        _at_warehouse(sb, oid, stage if stage != "released" else "received")
    elif stage == "label_created":
        _at_warehouse(sb, oid, "packed")
        with session(url) as db:
            db.add(Order(id=oid, shop="sandbox.myshopify.com", name=sb.world.orders[oid].name, stage=stage,
                         shopify_updated_at=datetime.now(timezone.utc)))
            db.commit()
    elif stage in ("shipped", "delivered"):
        sb.ops.fulfill(sb.world.orders[oid], "USPS", "9400")


@pytest.mark.parametrize("stage, minutes, cls", [(st, m, c) for (st, m), row in TABLE.items() for c in row])
def test_every_cell_of_the_stage_table_over_the_sandbox(world, stage, minutes, cls):
    from datetime import datetime, timedelta, timezone

    s, url = world
    sb = s.sandbox
    oid = place(sb, line_items=LINES)
    _set_stage(sb, url, oid, stage)
    outcome, role, hold = TABLE[(stage, minutes)][cls]
    now = datetime.now(timezone.utc) + timedelta(minutes=minutes)
    changed = CHANGED[cls]
    if outcome != "approval":
        out = order_edit(oid, CELL_REQUESTS[cls], "email", now=now)
        assert out["outcome"] == {"apply": "applied", "deny": "denied"}[outcome], out
        assert changed(sb.world.orders[oid]) == (outcome == "apply")
        assert _templates(sb)[-1] == ("edit_denied" if outcome == "deny" else
                                      "address_updated" if cls.startswith("address") else "edit_approved")
        return
    thread, result = start_in_thread(order_edit, oid, CELL_REQUESTS[cls], "email", now=now)
    [a] = _approvals(url, oid)
    assert a.role == role and bool(_holds(sb, oid, "ac:hold:approval")) == bool(hold)
    assert not changed(sb.world.orders[oid])
    resume_waiting_run(a.flow_run_id, {"decision": "reject", "approver": "owner@sandbox.test", "note": "no"})
    thread.join(60)
    assert result.get("value", result)["outcome"] == "denied"
    assert _holds(sb, oid, "ac:hold:approval") == [] and not changed(sb.world.orders[oid])


@pytest.mark.parametrize("over, req", [
    ({"line_items": [{"sku": "KNIFE-20CM", "quantity": 1}, {"sku": "CAP", "quantity": 1}]},
     {"kind": "remove_item", "line": "KNIFE-20CM"}),
    ({"order_type": "subscription"}, {"kind": "contact_change", "phone": "+14155550100"}),
    ({"gateway": "manual"}, {"kind": "quantity_change", "line": "CAP", "quantity": 1}),  # payment pending
])
def test_always_approval_cases_over_the_sandbox(world, over, req):
    s, url = world
    sb = s.sandbox
    oid = place(sb, **over)
    thread, result = start_in_thread(order_edit, oid, req, "email")
    [a] = _approvals(url, oid)
    assert (a.role, a.rule) == ("ops", "order_edit.always_approval")
    resume_waiting_run(a.flow_run_id, {"decision": "approve", "approver": "ops@sandbox.test", "note": ""})
    thread.join(60)
    assert result.get("value", result)["outcome"] == "applied"
