"""Pure rules about order snapshots as webhooks and the Admin API describe them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

# Topics whose body is the whole order (a snapshot); `orders/edited` carries an `order_edit` instead.
ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/cancelled"})
FULFILLMENT_TOPICS = frozenset(
    {
        "fulfillments/create",
        "fulfillments/update",
        "fulfillment_orders/placed_on_hold",
        "fulfillment_orders/hold_released",
    }
)
KNOWN_TOPICS = ORDER_TOPICS | FULFILLMENT_TOPICS | {"orders/edited"}


def order_id_in(payload: Any) -> int | None:
    """The order a non-snapshot payload is about (`order_id`, or `order_edit.order_id`)."""
    if not isinstance(payload, dict):
        return None
    for candidate in (payload.get("order_id"), (payload.get("order_edit") or {}).get("order_id")
                      if isinstance(payload.get("order_edit"), dict) else None):
        if isinstance(candidate, int) and not isinstance(candidate, bool) and candidate > 0:
            return candidate
    return None


def event_name(topic: str) -> str:
    """`orders/create` -> `aftercart.shopify.orders.create`."""
    return "aftercart.shopify." + topic.replace("/", ".")


def parse_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else None


def split_tags(tags: Any) -> list[str]:
    """REST payloads give tags as one comma-separated string; GraphQL as a list."""
    if isinstance(tags, list):
        return sorted({str(t).strip() for t in tags if str(t).strip()})
    if isinstance(tags, str):
        return sorted({t.strip() for t in tags.split(",") if t.strip()})
    return []


@dataclass(frozen=True)
class OrderFacts:
    id: int
    name: str
    email: str | None
    customer_locale: str | None
    country_code: str | None
    tags: list[str]
    updated_at: datetime
    stage: str


def stage_from_rest(order: dict[str, Any]) -> str:
    """Best stage Shopify alone can tell; the 3PL and carrier refine it (SOP 7)."""
    if order.get("cancelled_at"):
        return "cancelled"
    status = order.get("fulfillment_status")
    if status == "fulfilled":
        return "shipped"
    return "unfulfilled"


def stages_kept_over(snapshot_stage: str) -> tuple[str, ...]:
    """Recorded stages a Shopify snapshot saying `snapshot_stage` must not replace: the 3PL and the
    carrier told us more (an `orders/updated` for a hold at `picking` says only `unfulfilled`), so
    the stage never moves back; a cancellation (a side state Shopify owns) always replaces."""
    from domain.vocab import SIDE_STAGES, STAGES

    if snapshot_stage not in STAGES:
        return ()
    return STAGES[STAGES.index(snapshot_stage) + 1:] + tuple(s for s in SIDE_STAGES if s != "on_hold")


def order_facts(order: Any) -> OrderFacts | None:
    """The facts aftercart keeps from a REST order payload, or None when it is not one."""
    if not isinstance(order, dict):
        return None
    oid = order.get("id")
    if isinstance(oid, bool) or not isinstance(oid, int) or oid <= 0:
        return None
    updated = parse_timestamp(order.get("updated_at"))
    if updated is None:
        return None
    addr = order.get("shipping_address") if isinstance(order.get("shipping_address"), dict) else {}
    return OrderFacts(
        id=oid,
        name=str(order.get("name") or f"#{oid}"),
        email=order.get("email") or None,
        customer_locale=order.get("customer_locale") or None,
        country_code=(addr.get("country_code") or None),
        tags=split_tags(order.get("tags")),
        updated_at=updated,
        stage=stage_from_rest(order),
    )


SnapshotVerdict = Literal["apply", "same", "stale"]


def compare_snapshot(stored_updated_at: datetime | None, incoming_updated_at: datetime) -> SnapshotVerdict:
    """Never move an order back: an older payload is `stale`, the same instant is `same`."""
    if stored_updated_at is None or incoming_updated_at > stored_updated_at:
        return "apply"
    if incoming_updated_at == stored_updated_at:
        return "same"
    return "stale"


def _legacy_id(gid: Any) -> int | None:
    tail = str(gid or "").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None


def rest_from_graphql(node: dict[str, Any]) -> dict[str, Any]:
    """An Admin GraphQL `Order` (the OrderSnapshot fragment) written as the REST webhook payload.

    Reconciliation uses it to feed orders the inbox missed into the same path as webhooks.
    """
    addr = node.get("shippingAddress") or {}
    fulfillment = (node.get("displayFulfillmentStatus") or "UNFULFILLED").lower()
    money = ((node.get("totalPriceSet") or {}).get("shopMoney") or {})
    return {
        "id": _legacy_id(node.get("legacyResourceId") or node.get("id")),
        "admin_graphql_api_id": node.get("id"),
        "name": node.get("name"),
        "email": node.get("email"),
        "phone": node.get("phone"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "customer_locale": node.get("customerLocale"),
        "tags": ", ".join(node.get("tags") or []),
        "note": node.get("note"),
        "currency": node.get("currencyCode") or money.get("currencyCode"),
        "total_price": money.get("amount"),
        "financial_status": (node.get("displayFinancialStatus") or "").lower() or None,
        "fulfillment_status": None if fulfillment == "unfulfilled" else fulfillment,
        "cancelled_at": node.get("cancelledAt"),
        "cancel_reason": (node.get("cancelReason") or "").lower() or None,
        "payment_gateway_names": list(node.get("paymentGatewayNames") or []),
        "shipping_address": {
            "name": addr.get("name"), "first_name": addr.get("firstName"), "last_name": addr.get("lastName"),
            "address1": addr.get("address1"), "address2": addr.get("address2"), "city": addr.get("city"),
            "province_code": addr.get("provinceCode"), "zip": addr.get("zip"),
            "country_code": addr.get("countryCodeV2"), "phone": addr.get("phone"),
        } if addr else None,
        "line_items": [
            {"id": _legacy_id(li.get("id")), "sku": li.get("sku"), "title": li.get("title"),
             "quantity": li.get("quantity"),
             "price": (((li.get("originalUnitPriceSet") or {}).get("shopMoney") or {}).get("amount")),
             "variant_id": _legacy_id((li.get("variant") or {}).get("id")),
             "product_id": _legacy_id((li.get("product") or {}).get("id"))}
            for li in ((node.get("lineItems") or {}).get("nodes") or [])
        ],
        "customer": {"id": _legacy_id((node.get("customer") or {}).get("id")),
                     "tags": ", ".join((node.get("customer") or {}).get("tags") or [])},
        "source": "reconciliation",
    }


@dataclass(frozen=True)
class Missed:
    order_id: int
    updated_at: datetime
    reason: Literal["unknown_order", "newer_than_stored"]


def missed_by_inbox(
    remote: list[tuple[int, datetime]], stored: dict[int, datetime]
) -> list[Missed]:
    """Which orders the store has not seen at their current `updated_at` (reconciliation's rule)."""
    out = []
    for oid, ts in remote:
        have = stored.get(oid)
        if have is None:
            out.append(Missed(oid, ts, "unknown_order"))
        elif compare_snapshot(have, ts) == "apply":
            out.append(Missed(oid, ts, "newer_than_stored"))
    return out


_SHIPMENT_STAGE = {
    "in_transit": "in_transit", "out_for_delivery": "out_for_delivery", "delivered": "delivered",
    "attempted_delivery": "out_for_delivery", "failure": "failed_delivery", "label_printed": "label_created",
    "label_purchased": "label_created", "confirmed": "shipped",
}


def stage_from_fulfillment_event(topic: str, payload: Any, current: str | None) -> str | None:
    """The carrier's word on the stage after `fulfillments/*` events; None when it says nothing.

    A stage never moves backwards (events arrive out of order), except into a side state.
    """
    if not isinstance(payload, dict) or topic not in ("fulfillments/create", "fulfillments/update"):
        return None
    new = _SHIPMENT_STAGE.get(str(payload.get("shipment_status") or ""), "shipped")
    from domain.vocab import STAGES

    if current in STAGES and new in STAGES and STAGES.index(new) <= STAGES.index(current):
        return None
    if current in ("cancelled", "returned"):
        return None
    return new


_WAREHOUSE_STAGE = {"received": "released", "picking": "picking", "packed": "packed", "label_created": "label_created"}


def stage_from_warehouse_push(topic: str, payload: Any, current: str | None) -> str | None:
    """The 3PL's word on the stage from its status push (`3pl/<event>`); it owns the order from
    `released` to `shipped` (the carrier's fulfillment events take over from there)."""
    if not topic.startswith("3pl/") or not isinstance(payload, dict) or not isinstance(payload.get("order"), dict):
        return None
    from domain.vocab import STAGES

    new = _WAREHOUSE_STAGE.get(str(payload["order"].get("status") or ""))
    if new is None or current in ("cancelled", "returned"):
        return None
    if current in STAGES and STAGES.index(new) <= STAGES.index(current):
        return None
    return new


def live_stage(fulfillment_status: str | None, warehouse_status: str | None, recorded: str | None) -> str:
    """The stage as its owners tell it now: Shopify (fulfilled means it left), the 3PL (received,
    picking, packed, shipped), and what carrier events already told us (label, transit, delivery):
    the latest of these wins."""
    from domain.vocab import STAGES

    candidates = ["unfulfilled"]
    if warehouse_status:
        candidates.append({"received": "released", "picking": "picking", "packed": "packed", "label_created": "label_created",
                           "shipped": "shipped"}.get(warehouse_status, "released"))
    if fulfillment_status in ("FULFILLED", "PARTIALLY_FULFILLED"):
        candidates.append("shipped")
    if recorded in STAGES:
        candidates.append(recorded)
    return max(candidates, key=STAGES.index)
