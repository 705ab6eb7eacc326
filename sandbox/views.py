"""Sandbox state rendered as Shopify Admin GraphQL objects (dicts the executor reads).

Field names and enum values follow the 2026-10 schema; connections are callables taking the
field's arguments, as graphql-core's default resolver calls them.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime
from typing import Any, Callable, Sequence

from sandbox.clock import iso
from sandbox.world import FulfillmentOrderState, OrderState, World, money


def gid(kind: str, n: int) -> str:
    return f"gid://shopify/{kind}/{n}"


def parse_gid(value: Any, kind: str) -> int | None:
    m = re.fullmatch(rf"gid://shopify/{kind}/(\d+)", str(value or ""))
    return int(m.group(1)) if m else None


def _cursor(n: int) -> str:
    return base64.b64encode(f"c:{n}".encode()).decode()


def _uncursor(c: str | None) -> int:
    if not c:
        return -1
    try:
        return int(base64.b64decode(c).decode().split(":", 1)[1])
    except Exception:
        raise ValueError(f"invalid cursor {c!r}")


def connection(items: Sequence[Any], render: Callable[[Any], dict], first=None, after=None, last=None,
               before=None, reverse=False, **_ignored) -> dict:
    seq = list(reversed(items)) if reverse else list(items)
    idx = list(range(len(seq)))
    start = _uncursor(after) + 1
    end = _uncursor(before) if before else len(seq)
    window = idx[start:end]
    has_prev = start > 0
    has_next = end < len(seq)
    if first is not None:
        has_next = has_next or len(window) > first
        window = window[:first]
    if last is not None:
        has_prev = has_prev or len(window) > last
        window = window[-last:] if last else []
    nodes = [render(seq[i]) for i in window]
    edges = [{"cursor": _cursor(i), "node": n} for i, n in zip(window, nodes)]
    return {
        "nodes": nodes, "edges": edges,
        "pageInfo": {"hasNextPage": has_next, "hasPreviousPage": has_prev,
                     "startCursor": edges[0]["cursor"] if edges else None,
                     "endCursor": edges[-1]["cursor"] if edges else None},
    }


def money_bag(amount, currency: str) -> dict:
    m = {"amount": money(amount), "currencyCode": currency}
    return {"shopMoney": m, "presentmentMoney": m}


def address_view(a: dict[str, Any]) -> dict | None:
    if not a:
        return None
    first, _, last = (a.get("name") or "").partition(" ")
    return {
        "name": a.get("name"), "firstName": a.get("first_name", first), "lastName": a.get("last_name", last),
        "address1": a.get("address1"), "address2": a.get("address2"), "city": a.get("city"),
        "province": a.get("province"), "provinceCode": a.get("province_code"), "zip": a.get("zip"),
        "countryCodeV2": a.get("country_code"), "countryCode": a.get("country_code"), "country": a.get("country"),
        "phone": a.get("phone"), "company": a.get("company"), "id": gid("MailingAddress", abs(hash(str(a))) % 10**9),
    }


def hold_view(h) -> dict:
    return {"__typename": "FulfillmentHold", "id": gid("FulfillmentHold", h.id), "handle": h.handle,
            "reason": h.reason, "reasonNotes": h.reason_notes, "displayReason": h.reason.replace("_", " ").title(),
            "heldByRequestingApp": h.app == "aftercart"}


def fulfillment_order_view(fo: FulfillmentOrderState, order: OrderState, world: World) -> dict:
    lines = [li for li in order.line_items if li.id in fo.line_item_ids]
    actions = []
    if fo.status in ("OPEN", "IN_PROGRESS", "SCHEDULED"):
        actions = ["HOLD", "CREATE_FULFILLMENT", "MOVE"]
    elif fo.status == "ON_HOLD":
        actions = ["RELEASE_HOLD", "HOLD"]
    return {
        "__typename": "FulfillmentOrder",
        "id": gid("FulfillmentOrder", fo.id), "status": fo.status, "requestStatus": fo.request_status,
        "fulfillAt": iso(fo.fulfill_at) if fo.fulfill_at else None,
        "supportedActions": [{"action": a} for a in actions],
        "fulfillmentHolds": [hold_view(h) for h in fo.holds],
        "orderId": gid("Order", order.id), "orderName": order.name,
        "order": lambda info, **_: order_view(order, world),
        "createdAt": iso(order.created_at), "updatedAt": iso(order.updated_at),
        "lineItems": lambda info, **kw: connection(lines, lambda li: {
            "id": gid("FulfillmentOrderLineItem", li.id), "sku": li.sku, "totalQuantity": li.quantity,
            "remainingQuantity": li.quantity, "lineItem": line_item_view(li, order, world)}, **kw),
    }


def line_item_view(li, order: OrderState, world: World) -> dict:
    product = next((p for p in world.products if p.id == li.product_id), None)
    return {
        "id": gid("LineItem", li.id), "sku": li.sku, "title": li.title, "name": li.title,
        "quantity": li.quantity, "currentQuantity": li.quantity, "refundableQuantity": li.quantity,
        "originalUnitPriceSet": money_bag(li.price, order.currency),
        "product": product_view(product, world) if product else None,
        "variant": ({"id": gid("ProductVariant", li.variant_id), "sku": li.sku, "title": li.title}
                    if li.variant_id else None),
    }


# Where Shopify's Search & Discovery app keeps a product's complementary products.
COMPLEMENTS_NAMESPACE, COMPLEMENTS_KEY = "shopify--discovery--product_recommendation", "complementary_products"


def product_view(p, world: World) -> dict:
    def metafield(info, key, namespace=None, **_):
        if (namespace, key) != (COMPLEMENTS_NAMESPACE, COMPLEMENTS_KEY) or not p.complements:
            return None
        return {"namespace": namespace, "key": key, "type": "list.product_reference",
                "value": json.dumps([gid("Product", c) for c in p.complements])}

    return {
        "__typename": "Product", "id": gid("Product", p.id), "title": p.title, "handle": p.handle, "tags": p.tags,
        "productType": p.product_type, "metafield": metafield,
        "variants": lambda info, **kw: connection(p.variants, lambda v: variant_view(v, p), **kw),
    }


def variant_view(v, p) -> dict:
    return {
        "__typename": "ProductVariant", "id": gid("ProductVariant", v.id), "sku": v.sku, "title": v.title,
        "price": money(v.price), "inventoryQuantity": v.available,
        "product": {"id": gid("Product", p.id), "title": p.title, "tags": p.tags},
        "inventoryItem": {"id": gid("InventoryItem", v.inventory_item_id), "sku": v.sku},
    }


def order_view(o: OrderState, world: World) -> dict:
    customer = world.customers.get(o.customer_id)
    refunded = o.refunded
    return {
        "__typename": "Order",
        "id": gid("Order", o.id), "legacyResourceId": str(o.id), "name": o.name,
        "createdAt": iso(o.created_at), "updatedAt": iso(o.updated_at),
        "email": o.email, "phone": o.phone, "customerLocale": o.customer_locale, "tags": list(o.tags), "note": o.note,
        "displayFinancialStatus": o.financial_status, "displayFulfillmentStatus": o.fulfillment_status,
        "returnStatus": o.return_status,
        "risk": {"recommendation": {"HIGH": "CANCEL", "MEDIUM": "INVESTIGATE"}.get(o.risk, "ACCEPT"),
                 "assessments": [{"riskLevel": o.risk, "facts": []}]},
        "shippingAddress": address_view(o.shipping_address),
        "cancelledAt": iso(o.cancelled_at) if o.cancelled_at else None, "cancelReason": o.cancel_reason,
        "closed": o.cancelled_at is not None, "test": True, "sourceName": "web",
        "currencyCode": o.currency, "paymentGatewayNames": list(o.gateways),
        "totalPriceSet": money_bag(o.total, o.currency),
        "totalRefundedSet": money_bag(refunded, o.currency),
        "totalReceivedSet": money_bag(o.total if o.financial_status != "PENDING" else 0, o.currency),
        "netPaymentSet": money_bag((o.total if o.financial_status != "PENDING" else 0) - refunded, o.currency),
        "shippingLine": {"title": o.shipping_method.title(), "code": o.shipping_method,
                         "originalPriceSet": money_bag(o.shipping_price, o.currency)},
        "customAttributes": [{"key": k, "value": v} for k, v in (o.attributes or {"order_type": o.order_type}).items()],
        "disputes": [{"id": gid("ShopifyPaymentsDispute", d["id"]), "initiatedAs": d["initiatedAs"],
                      "status": d["status"]} for d in o.disputes],
        "customer": ({"id": gid("Customer", customer.id), "tags": list(customer.tags), "locale": customer.locale,
                      "orders": lambda info, **kw: connection(
                          sorted((x for x in world.orders.values() if x.customer_id == customer.id),
                                 key=lambda x: x.created_at), lambda x: order_view(x, world), **kw),
                      "displayName": customer.email or "", "defaultEmailAddress": {"emailAddress": customer.email},
                      "numberOfOrders": str(sum(1 for x in world.orders.values() if x.customer_id == customer.id))}
                     if customer else None),
        "lineItems": lambda info, **kw: connection(o.line_items, lambda li: line_item_view(li, o, world), **kw),
        "fulfillmentOrders": lambda info, **kw: connection(
            o.fulfillment_orders, lambda fo: fulfillment_order_view(fo, o, world), **kw),
        "fulfillments": lambda info, **kw: [fulfillment_view(f, o) for f in world.fulfillments.get(o.id, [])],
        "refunds": lambda info, **kw: [
            {"id": gid("Refund", r["id"]), "createdAt": r["created_at"], "note": r.get("note"),
             "totalRefundedSet": money_bag(r["amount"], o.currency)} for r in o.refunds][: kw.get("first") or None],
    }


_QUERY_TERM = re.compile(r"(updated_at|created_at)\s*:\s*(>=|<=|>|<)?\s*'?\"?([0-9T:\-+.Z]+)'?\"?")


def filter_orders(orders: list[OrderState], query: str | None) -> list[OrderState]:
    """Shopify search syntax, the subset aftercart uses: updated_at/created_at comparisons, name."""
    if not query:
        return orders
    out = orders
    for field, op, value in _QUERY_TERM.findall(query):
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
        attr = "updated_at" if field == "updated_at" else "created_at"
        cmp = {">": lambda a: a > ts, ">=": lambda a: a >= ts, "<": lambda a: a < ts, "<=": lambda a: a <= ts,
               "": lambda a: a == ts}[op or ""]
        out = [o for o in out if cmp(getattr(o, attr))]
    m = re.search(r"name\s*:\s*'?(#?\d+)'?", query)
    if m:
        want = m.group(1) if m.group(1).startswith("#") else "#" + m.group(1)
        out = [o for o in out if o.name == want]
    return out


def fulfillment_view(f, o: OrderState) -> dict:
    return {
        "__typename": "Fulfillment", "id": gid("Fulfillment", f.id), "status": f.status,
        "displayStatus": f.display_status, "createdAt": iso(f.created_at), "updatedAt": iso(f.updated_at),
        "trackingInfo": lambda info, **kw: [{"company": f.tracking_company, "number": f.tracking_number,
                                             "url": f"https://sandbox.carrier.test/track/{f.tracking_number}"}],
        "order": lambda info, **kw: None,
    }
