"""Pure rules about order snapshots as webhooks and the Admin API describe them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

ORDER_TOPICS = frozenset({"orders/create", "orders/updated", "orders/edited", "orders/cancelled"})
FULFILLMENT_TOPICS = frozenset(
    {
        "fulfillments/create",
        "fulfillments/update",
        "fulfillment_orders/placed_on_hold",
        "fulfillment_orders/hold_released",
    }
)
KNOWN_TOPICS = ORDER_TOPICS | FULFILLMENT_TOPICS


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
