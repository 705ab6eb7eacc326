"""Effect tasks under Prefect: a flow re-run (crash, suspend, duplicate webhook) never repeats one."""

from __future__ import annotations

import pytest
from prefect import flow
from sqlmodel import select

from tasks import effects
from tasks.db.engine import session
from tasks.db.models import Effect
from tests.helpers import free_port
from tests.sandbox_fixtures import place, served_sandbox

pytestmark = pytest.mark.usefixtures("prefect_harness")


@flow
def address_hold_and_refund(database_url: str, order_id: int, fulfillment_order_id: str, email: str) -> None:
    """A stand-in for an SOP's effect sequence, keyed by business ids as SOP flows key theirs."""
    base = f"order:{order_id}:case:1"
    effects.place_hold(database_url, order_id, fulfillment_order_id, "ac:hold:address", "missing unit",
                       effect_key=f"{base}:hold")
    effects.add_tags(database_url, order_id, ["ac:hold:address"], effect_key=f"{base}:tag")
    effects.refund_order(database_url, order_id, "3.00", "shopify_payments", "goodwill", effect_key=f"{base}:refund")
    effects.send_mail(database_url, order_id, email, "Please confirm your address", "Is it Apt 4B?", None,
                      {"X-Aftercart-Template": "address_confirm_request"}, effect_key=f"{base}:mail")
    effects.send_to_3pl(database_url, order_id, [{"sku": "MUG", "quantity": 1}], {}, ["ac:hold:address"],
                        effect_key=f"{base}:3pl")


def test_rerunning_the_flow_with_lost_replies_applies_every_effect_once(aftercart_env, monkeypatch):
    smtp = free_port()
    with served_sandbox(smtp_port=smtp) as s:
        monkeypatch.setenv("AFTERCART_SHOPIFY_ADMIN_URL", f"{s.url}/admin/api/2026-10/graphql.json")
        monkeypatch.setenv("AFTERCART_SHOPIFY_ACCESS_TOKEN", "tok")
        monkeypatch.setenv("AFTERCART_THREEPL_URL", s.url)
        monkeypatch.setenv("AFTERCART_SMTP_PORT", str(smtp))
        s.http.post(f"{s.url}/sandbox/faults", json={"seed": 9, "rules": {
            "FulfillmentOrderHold": {"lost_reply": 0.5}, "RefundCreate": {"lost_reply": 0.5}}})
        oid = place(s.sandbox)
        fo = s.shopify.fulfillment_orders(oid)[0]["id"]
        for _ in range(3):  # the first run, then two re-runs from the top
            address_hold_and_refund(aftercart_env, oid, fo, "dana@example.com")
        applied = s.sandbox.ops.applied
        mails = s.sandbox.mailbox.find(to="dana@example.com")
        warehouse = s.sandbox.threepl.orders[oid]
    assert applied.count(("hold", oid)) == 1 and applied.count(("refund", oid)) == 1
    assert applied.count(("tagsAdd", oid)) == 1
    assert len(mails) == 1 and warehouse.version == 1
    with session(aftercart_env) as db:
        rows = db.exec(select(Effect)).all()
    assert sorted(r.kind for r in rows) == ["3pl", "hold", "message", "refund", "tag"]
    assert {r.status for r in rows} == {"confirmed"} and all(r.attempts == 1 for r in rows)
