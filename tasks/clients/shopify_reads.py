"""What the SOP flows read from Shopify, as plain values (snake_case addresses, risk, order type).

A mixin of `ShopifyClient` (it uses the client's `execute`): one method per SOP read, each one
query document under graphql/.
"""

from __future__ import annotations

from typing import Any


def order_gid(order_id: int | str) -> str:
    s = str(order_id)
    return s if s.startswith("gid://") else f"gid://shopify/Order/{s}"


def risk_and_type(o: dict[str, Any]) -> tuple[str, str]:
    """(risk level high|medium|low, order type from the `order_type` attribute) of an order read
    with the OrderRiskAndType fragment."""
    levels = [a["riskLevel"] for a in ((o.get("risk") or {}).get("assessments") or [])]
    attrs = {a["key"]: a["value"] for a in o.get("customAttributes") or []}
    risk = "high" if "HIGH" in levels else "medium" if "MEDIUM" in levels else "low"
    return risk, attrs.get("order_type", "standard")


def snake_address(a: dict[str, Any] | None) -> dict[str, Any]:
    """A GraphQL MailingAddress in the webhook payload's field names (what the address checks read)."""
    a = a or {}
    return {"name": a.get("name"), "first_name": a.get("firstName"), "last_name": a.get("lastName"),
            "address1": a.get("address1"), "address2": a.get("address2"), "city": a.get("city"),
            "province_code": a.get("provinceCode"), "zip": a.get("zip"), "country_code": a.get("countryCodeV2"),
            "phone": a.get("phone")}



class SopReads:
    """Reads for SOPs 2, 3 and 4 (mixed into ShopifyClient)."""

    def order_for_address_review(self, order_id: int) -> dict[str, Any] | None:
        """The order as SOP 4 reads it: shipping address in webhook (snake_case) field names, the
        shipping line, the customer's email and locale, the fulfillment orders with their holds."""
        o = self.execute("OrderForAddressReview", {"id": order_gid(order_id)}, expected_cost=16)["order"]
        if o is None:
            return None
        line = o.get("shippingLine") or {}
        return {"id": order_id, "name": o["name"], "email": o.get("email"), "customer_locale": o.get("customerLocale"),
                "tags": o.get("tags") or [], "cancelled": o.get("cancelledAt") is not None,
                "shipping_address": snake_address(o.get("shippingAddress")),
                "shipping_line": {"code": line.get("code"), "title": line.get("title"), "source": line.get("source"),
                                  "carrier_identifier": line.get("carrierIdentifier")},
                "fulfillment_orders": o["fulfillmentOrders"]["nodes"]}

    def order_for_cancellation(self, order_id: int) -> dict[str, Any] | None:
        """The order as SOP 3 reads it (plain values: risk level, order type, captured amount,
        customer tags and chargebacks)."""
        o = self.execute("OrderForCancellation", {"id": order_gid(order_id)}, expected_cost=60)["order"]
        if o is None:
            return None
        risk, order_type = risk_and_type(o)
        customer = o.get("customer") or {}
        orders = ((customer.get("orders") or {}).get("nodes")) or []
        return {"id": order_id, "name": o["name"], "email": o.get("email"), "customer_locale": o.get("customerLocale"),
                "tags": o.get("tags") or [], "cancelled": o.get("cancelledAt") is not None, "risk": risk,
                "order_type": order_type,
                "fulfillment_status": o.get("displayFulfillmentStatus"),
                "captured": o["totalReceivedSet"]["shopMoney"]["amount"],
                "currency": o["totalReceivedSet"]["shopMoney"]["currencyCode"],
                "gateways": o.get("paymentGatewayNames") or [],
                "country_code": (o.get("shippingAddress") or {}).get("countryCodeV2"),
                "customer_tags": customer.get("tags") or [],
                "chargebacks": sum(1 for n in orders for d in n.get("disputes") or [] if d["initiatedAs"] == "CHARGEBACK"),
                "line_items": [{"sku": li.get("sku"), "title": li.get("title"), "quantity": li.get("quantity")}
                               for li in o["lineItems"]["nodes"]]}

    def order_for_edit(self, order_id: int) -> dict[str, Any] | None:
        """The order as SOP 2 reads it (plain values)."""
        o = self.execute("OrderForEdit", {"id": order_gid(order_id)}, expected_cost=40)["order"]
        if o is None:
            return None
        risk, order_type = risk_and_type(o)
        return {"id": order_id, "name": o["name"], "email": o.get("email"), "phone": o.get("phone"),
                "customer_locale": o.get("customerLocale"), "tags": o.get("tags") or [],
                "created_at": o["createdAt"], "cancelled": o.get("cancelledAt") is not None,
                "risk": risk, "order_type": order_type,
                "payment_review": o.get("displayFinancialStatus") in ("PENDING", "AUTHORIZED"),
                "fulfillment_status": o.get("displayFulfillmentStatus"),
                "shipping_address": snake_address(o.get("shippingAddress")),
                "shipping": (o.get("shippingLine") or {}).get("title"),
                "lines": [{"id": li["id"], "sku": li.get("sku"), "quantity": li["quantity"],
                           "variant_id": (li.get("variant") or {}).get("id"),
                           "product_id": (li.get("product") or {}).get("id"),
                           "product_tags": (li.get("product") or {}).get("tags") or []}
                          for li in o["edits"]["nodes"]],
                "fulfillment_orders": o["fulfillmentOrders"]["nodes"]}

    def orders_for_release(self, order_ids: list[int]) -> dict[int, dict[str, Any]]:
        """order id -> what SOP 7's release decision reads (10 orders per query, ~40 cost points each)."""
        out: dict[int, dict[str, Any]] = {}
        for i in range(0, len(order_ids), 10):
            chunk = order_ids[i:i + 10]
            nodes = self.execute("OrdersForRelease", {"ids": [order_gid(x) for x in chunk]},
                                 expected_cost=45 * len(chunk))["nodes"]
            for n in nodes:
                if not n:
                    continue
                attrs = {a["key"]: a["value"] for a in n.get("customAttributes") or []}
                out[int(n["legacyResourceId"])] = {
                    "name": n["name"], "created_at": n["createdAt"], "cancelled": n.get("cancelledAt") is not None,
                    "tags": n.get("tags") or [], "order_type": attrs.get("order_type", "standard"),
                    "shipping_address": snake_address(n.get("shippingAddress")),
                    "fulfillment_orders": [{
                        "id": fo["id"], "status": fo["status"],
                        "holds": [h["handle"] for h in fo.get("fulfillmentHolds") or [] if h.get("handle")],
                        "lines": [(li["sku"], li["remainingQuantity"]) for li in fo["lineItems"]["nodes"] if li["sku"]]}
                        for fo in n["fulfillmentOrders"]["nodes"]]}
        return out

    def open_returns(self, order_ids: list[int]) -> dict[int, int]:
        """order id -> 1 for the orders with a return requested or in progress (up to 50 ids per call)."""
        if not order_ids:
            return {}
        nodes = self.execute("OrderReturnStatuses", {"ids": [order_gid(i) for i in order_ids]},
                             expected_cost=len(order_ids) + 2)["nodes"]
        return {int(n["legacyResourceId"]): 1 for n in nodes
                if n and n.get("returnStatus") in ("RETURN_REQUESTED", "IN_PROGRESS")}

    def variants_by_sku(self, skus: list[str]) -> dict[str, dict[str, Any]]:
        """sku -> {id, sku, product_id, product_tags, available} for the skus that exist."""
        wanted = sorted({s for s in skus if s})
        if not wanted:
            return {}
        query = " OR ".join(f"sku:'{s}'" for s in wanted)
        nodes = self.execute("VariantsBySku", {"query": query}, expected_cost=60)["productVariants"]["nodes"]
        return {n["sku"]: {"id": n["id"], "sku": n["sku"], "product_id": n["product"]["id"],
                           "product_tags": n["product"]["tags"], "available": n.get("inventoryQuantity") or 0}
                for n in nodes if n["sku"] in wanted}
