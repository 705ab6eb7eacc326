"""The clients against the sandbox over loopback HTTP: every query and mutation, Shopify's rules."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sandbox.views import gid
from tasks.clients.shopify import ShopifyError, UserError
from tasks.clients.threepl import ThreePLError
from tests.sandbox_fixtures import place, served_sandbox


@pytest.fixture(scope="module")
def s():
    with served_sandbox() as served:
        yield served


def fo_of(s, oid):
    return s.shopify.fulfillment_orders(oid)[0]


def test_bad_token_wrong_version_and_invalid_documents_are_refused(s):
    url = f"{s.url}/admin/api/2026-10/graphql.json"
    r = s.http.post(url, json={"query": "{ shop { name } }"}, headers={"X-Shopify-Access-Token": "nope"})
    assert r.status_code == 401
    r = s.http.post(f"{s.url}/admin/api/2019-04/graphql.json", json={"query": "{ shop { name } }"},
                    headers={"X-Shopify-Access-Token": "tok"})
    assert r.status_code == 404
    r = s.http.post(url, json={"query": "{ orders(first: 1) { nodes { bogus } } }"},
                    headers={"X-Shopify-Access-Token": "tok"})
    assert "Cannot query field 'bogus'" in r.json()["errors"][0]["message"]
    cost = s.http.post(url, json={"query": "{ orders(first: 1) { nodes { id } } }"},
                       headers={"X-Shopify-Access-Token": "tok"}).json()["extensions"]["cost"]
    assert {"requestedQueryCost", "actualQueryCost", "throttleStatus"} <= set(cost)
    assert cost["actualQueryCost"] <= cost["requestedQueryCost"]


def test_orders_paginate_and_filter_by_updated_at(s):
    ids = [place(s.sandbox) for _ in range(40)]
    nodes = list(s.shopify.orders_updated_since(None))
    assert set(ids) <= {int(n["legacyResourceId"]) for n in nodes}
    cut = s.sandbox.world.orders[ids[20]].updated_at
    later = {int(n["legacyResourceId"]) for n in s.shopify.orders_updated_since(cut)}
    assert later == {i for i in ids[21:]} | (later - set(ids))
    assert ids[0] not in later
    o = s.shopify.order(ids[0])
    assert o["name"].startswith("#") and o["shippingAddress"]["countryCodeV2"] == "US"
    assert [li["sku"] for li in o["lineItems"]["nodes"]] == ["MUG", "CAP"]
    assert s.shopify.order(1) is None


def test_products_and_inventory(s):
    products = list(s.shopify.products())
    assert len(products) >= 30
    tags = {t for p in products for t in p["tags"]}
    assert {"regulated", "restricted", "digital", "bundle", "gift_card"} <= tags
    mug = next(p for p in products if p["handle"] == "mug")
    by_id = {p["id"]: p["handle"] for p in products}
    assert sorted(by_id[c] for c in json.loads(mug["complements"]["value"])) == ["coaster-set", "coffee-beans",
                                                                                 "tea-sampler"]
    assert next(p for p in products if p["handle"] == "vitamins")["complements"] is None
    item = mug["variants"]["nodes"][0]["inventoryItem"]["id"]
    before = s.shopify.inventory(item)
    assert set(before) == {"available", "committed", "on_hand"}
    place(s.sandbox, line_items=[{"sku": "MUG", "quantity": 3, "price": "18.00"}])
    after = s.shopify.inventory(item)
    assert after["available"] == before["available"] - 3 and after["committed"] == before["committed"] + 3
    assert after["on_hand"] == before["on_hand"]


def test_tags_add_and_remove(s):
    oid = place(s.sandbox)
    s.shopify.add_tags(oid, ["ac:hold:address", "ac:review:support"])
    s.shopify.remove_tags(oid, ["ac:review:support"])
    assert s.shopify.order(oid)["tags"] == ["ac:hold:address"]
    with pytest.raises(UserError):
        s.shopify.add_tags(99999, ["x"])


def test_tags_swap_in_one_request_takes_off_then_puts_on(s):
    oid = place(s.sandbox)
    s.shopify.add_tags(oid, ["ac:cancel:requested", "vip"])
    calls, points = s.shopify.stats.calls, s.shopify.stats.cost_points
    s.shopify.swap_tags(oid, ["ac:cancel:requested"], ["ac:cancel:approved"])
    assert s.shopify.order(oid)["tags"] == ["ac:cancel:approved", "vip"]
    assert s.shopify.stats.calls - calls == 2  # the swap and the read
    assert s.shopify.stats.cost_points - points >= 20  # two mutations are charged as two
    with pytest.raises(UserError) as e:
        s.shopify.swap_tags(99999, ["x"], ["y"])
    assert e.value.mutation == "removed"


def test_order_update_contact_and_address(s):
    oid = place(s.sandbox)
    o = s.shopify.update_order(oid, email="new@example.com", shippingAddress={"address2": "Apt 4B"})
    assert o["email"] == "new@example.com" and o["shippingAddress"]["address2"] == "Apt 4B"
    assert o["shippingAddress"]["address1"] == "405 Lexington Ave"


def test_hold_with_handle_is_placed_once_and_limits_apply(s):
    oid = place(s.sandbox)
    fo = fo_of(s, oid)
    h1 = s.shopify.hold(oid, fo["id"], "INCORRECT_ADDRESS", "ac:hold:address", "missing unit")
    h2 = s.shopify.hold(oid, fo["id"], "INCORRECT_ADDRESS", "ac:hold:address")  # a re-run
    assert h1["id"] == h2["id"]
    fo = fo_of(s, oid)
    assert fo["status"] == "ON_HOLD" and len(fo["fulfillmentHolds"]) == 1
    for i in range(9):
        s.shopify.hold(oid, fo["id"], "OTHER", f"h{i}")
    with pytest.raises(UserError) as e:
        s.shopify.hold(oid, fo["id"], "OTHER", "one-too-many")
    assert e.value.codes == ["FULFILLMENT_ORDER_HOLD_LIMIT_REACHED"]


def test_release_by_hold_ids_keeps_another_apps_hold(s):
    oid = place(s.sandbox)
    fo = fo_of(s, oid)
    with s.sandbox.world.lock:  # another app (a fraud screener) holds the order too
        s.sandbox.ops.hold(int(fo["id"].rsplit("/", 1)[1]), "HIGH_RISK_OF_FRAUD", "screen", None, app="fraud-app")
    mine = s.shopify.hold(oid, fo["id"], "INCORRECT_ADDRESS", "ac:hold:address")
    after = s.shopify.release_holds(fo["id"], [mine["id"]])
    assert [h["handle"] for h in after["fulfillmentHolds"]] == ["screen"]
    assert after["status"] == "ON_HOLD" and after["fulfillmentHolds"][0]["heldByRequestingApp"] is False
    with pytest.raises(ValueError):
        s.shopify.release_holds(fo["id"], [])  # never "release all"
    # what Shopify does without holdIds, and why aftercart never sends that: every app's hold goes
    doc = "mutation($id: ID!) { fulfillmentOrderReleaseHold(id: $id) { fulfillmentOrder { status } } }"
    r = s.http.post(f"{s.url}/admin/api/2026-10/graphql.json", json={"query": doc, "variables": {"id": fo["id"]}},
                    headers={"X-Shopify-Access-Token": "tok"}).json()
    assert r["data"]["fulfillmentOrderReleaseHold"]["fulfillmentOrder"]["status"] == "OPEN"


def test_order_edit_quantity_variant_and_shipping(s):
    oid = place(s.sandbox)
    order = s.shopify.order(oid)
    cap_line = next(li for li in order["lineItems"]["nodes"] if li["sku"] == "CAP")
    bottle = next(p for p in s.shopify.products() if p["handle"] == "bottle")["variants"]["nodes"][0]
    edited = s.shopify.edit_order(oid, quantities={cap_line["id"]: 1}, add_variants=[(bottle["id"], 1)],
                                  shipping=("gid://shopify/ShippingLine/1", "Express", {"amount": "12.00",
                                                                                        "currencyCode": "USD"}))
    assert sorted((li["sku"], li["quantity"]) for li in edited["lineItems"]["nodes"]) == [
        ("BOTTLE-500ML", 1), ("CAP", 1), ("MUG", 1)]
    o = s.sandbox.world.orders[oid]
    assert o.shipping_method == "express" and o.shipping_price == Decimal("12.00")
    with pytest.raises(UserError):  # the variant is on the order now
        s.shopify.edit_order(oid, add_variants=[(bottle["id"], 1)])


def test_cancel_runs_as_a_job_restocks_refunds_and_refuses_twice(s):
    oid = place(s.sandbox)
    total = s.sandbox.world.orders[oid].total
    mug = s.sandbox.world.variant_by_sku("MUG")[1]
    before = mug.available
    o = s.shopify.cancel_order(oid, reason="CUSTOMER", restock=True, refund=True)
    assert o["cancelledAt"] and o["cancelReason"] == "CUSTOMER"
    assert Decimal(s.sandbox.world.orders[oid].refunded) == total and mug.available == before + 1
    again = s.shopify.cancel_order(oid)  # already cancelled: the client reports the cancelled order
    assert again["cancelledAt"] == o["cancelledAt"]
    assert [op for op in s.sandbox.ops.applied if op == ("cancel", oid)] == [("cancel", oid)]


def test_refund_with_a_repeated_idempotency_key_refunds_once(s):
    oid = place(s.sandbox)
    r1 = s.shopify.refund(oid, "10.00", "shopify_payments", "refund:order:%d:req:1" % oid)
    r2 = s.shopify.refund(oid, "10.00", "shopify_payments", "refund:order:%d:req:1" % oid)
    assert r1["id"] == r2["id"]
    assert s.sandbox.world.orders[oid].refunded == Decimal("10.00")
    with pytest.raises(ShopifyError, match="different parameters"):
        s.shopify.refund(oid, "11.00", "shopify_payments", "refund:order:%d:req:1" % oid)
    with pytest.raises(UserError, match="exceeds the refundable amount"):
        s.shopify.refund(oid, "1000.00", "shopify_payments", "refund:order:%d:req:2" % oid)
    with pytest.raises(ValueError):
        s.shopify.refund(oid, "1.00", "shopify_payments", "")


def test_refund_without_idempotent_directive_is_an_error(s):
    oid = place(s.sandbox)
    doc = ('mutation($i: RefundInput!) { refundCreate(input: $i) { refund { id } } }')
    r = s.http.post(f"{s.url}/admin/api/2026-10/graphql.json", headers={"X-Shopify-Access-Token": "tok"}, json={
        "query": doc, "variables": {"i": {"orderId": gid("Order", oid), "transactions": [
            {"orderId": gid("Order", oid), "amount": "1.00", "gateway": "shopify_payments", "kind": "REFUND"}]}}}).json()
    assert r["errors"][0]["extensions"]["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    assert s.sandbox.world.orders[oid].refunds == []


def test_threepl_versions_ship_with_tracking_and_carrier_updates(s):
    oid = place(s.sandbox)
    w = s.threepl.send_order(oid, [{"sku": "MUG", "quantity": 1}], {"zip": "10174"}, ["ac:edited:address"])
    assert (w["status"], w["version"]) == ("received", 1)
    assert fo_of(s, oid)["status"] == "IN_PROGRESS"
    assert s.threepl.send_order(oid, [{"sku": "MUG", "quantity": 2}], {}, [])["version"] == 2
    s.threepl.set_flag(oid, "ac:hold:inventory")
    held = s.http.post(f"{s.url}/3pl/orders/{oid}/advance", json={"status": "picking"})
    assert held.status_code == 409 and "held at the warehouse" in held.json()["error"]
    s.threepl.clear_flag(oid, "ac:hold:inventory")
    for status in ("picking", "packed", "shipped"):
        s.http.post(f"{s.url}/3pl/orders/{oid}/advance", json={"status": status}).raise_for_status()
    with pytest.raises(ThreePLError) as e:
        s.threepl.send_order(oid, [{"sku": "MUG", "quantity": 3}], {}, [])
    assert e.value.status == 409
    assert s.threepl.request_cancel(oid) == {"accepted": False, "status": "shipped", "reason": "already shipped"}
    f = s.shopify.fulfillments(oid)
    assert f["displayFulfillmentStatus"] == "FULFILLED"
    tracking = f["fulfillments"][0]["trackingInfo"][0]["number"]
    r = s.http.post(f"{s.url}/carrier/events", json={"tracking_number": tracking, "status": "delivered"})
    assert r.status_code == 200
    assert s.shopify.fulfillments(oid)["fulfillments"][0]["displayStatus"] == "DELIVERED"
    assert s.http.get(f"{s.url}/sandbox/orders.json").json()["orders"]


def test_threepl_cancel_request_pulls_back_before_shipping(s):
    oid = place(s.sandbox)
    s.threepl.send_order(oid, [{"sku": "MUG", "quantity": 1}], {}, [])
    s.http.post(f"{s.url}/3pl/orders/{oid}/advance", json={"status": "picking"}).raise_for_status()
    assert s.threepl.request_cancel(oid)["pulled_back_from"] == "picking"
    with pytest.raises(ThreePLError) as e:
        s.threepl.get(123)
    assert e.value.status == 404


def test_bad_requests_to_the_sandbox_get_clear_errors(s):
    assert s.http.post(f"{s.url}/3pl/orders", json={"lines": []}).status_code == 400
    assert s.http.post(f"{s.url}/carrier/events", json={"tracking_number": "x", "status": "lost"}).status_code == 409
    r = s.http.post(f"{s.url}/sandbox/orders", json={"shipping_address": {"country_code": "XZ"}})
    assert r.status_code == 400 and "XZ" in r.json()["error"]
    r = s.http.post(f"{s.url}/sandbox/faults", json={"rules": {"*": {"meteor": 0.5}}})
    assert r.status_code == 400 and "meteor" in r.json()["error"]


def test_customer_chargebacks_come_from_disputes_on_past_orders(s):
    oid = place(s.sandbox, customer={"email": "cb@example.com", "locale": "en", "chargebacks": 2,
                                     "tags": ["dispute-risk"]})
    assert s.shopify.customer_history(oid) == {"customer_id": s.shopify.customer_history(oid)["customer_id"],
                                               "tags": ["dispute-risk"], "chargebacks": 2}
    clean = place(s.sandbox, customer={"email": "clean@example.com", "locale": "en"})
    assert s.shopify.customer_history(clean)["chargebacks"] == 0
