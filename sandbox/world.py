"""The sandbox store's state: orders, customers, catalogue, fulfillment orders, holds, refunds.

Thread-safe (one lock); every change bumps the order's `updated_at` and queues the webhooks
Shopify would send. Rendering to GraphQL objects lives in graphql_api.py, to REST webhook
payloads in `rest_order` below.
"""

from __future__ import annotations

import itertools
import random
import threading
from functools import lru_cache
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable

from sandbox.catalogue import Product, Variant, build_catalogue
from sandbox.clock import Clock, iso

@lru_cache(maxsize=1)
def _country_codes() -> frozenset[str]:
    from sandbox.schema import enum_values

    return frozenset(enum_values("CountryCode"))


_RISK = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH"}


@dataclass
class Hold:
    id: int
    handle: str
    reason: str
    reason_notes: str | None
    app: str


@dataclass
class FulfillmentOrderState:
    id: int
    status: str = "OPEN"  # OPEN, IN_PROGRESS, ON_HOLD, SCHEDULED, CLOSED, CANCELLED, INCOMPLETE
    request_status: str = "UNSUBMITTED"
    holds: list[Hold] = field(default_factory=list)
    line_item_ids: list[int] = field(default_factory=list)
    status_before_hold: str = "OPEN"
    fulfill_at: datetime | None = None  # a SCHEDULED (preorder) fulfillment order's date


@dataclass
class LineItemState:
    id: int
    sku: str
    title: str
    quantity: int
    price: Decimal
    variant_id: int | None
    product_id: int | None
    tags: list[str] = field(default_factory=list)


@dataclass
class OrderState:
    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    email: str | None
    phone: str | None
    customer_locale: str | None
    customer_id: int
    tags: list[str]
    note: str | None
    shipping_address: dict[str, Any]
    line_items: list[LineItemState]
    currency: str
    gateways: list[str]
    risk: str
    order_type: str
    shipping_method: str
    shipping_price: Decimal = Decimal("0")
    tax: Decimal = Decimal("0")
    financial_status: str = "PAID"
    fulfillment_status: str = "UNFULFILLED"
    fulfillment_orders: list[FulfillmentOrderState] = field(default_factory=list)
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None
    refunds: list[dict[str, Any]] = field(default_factory=list)
    disputes: list[dict[str, Any]] = field(default_factory=list)  # {"id", "initiatedAs", "status"}
    # the order's attributes (REST `note_attributes`, GraphQL `customAttributes`), as the storefront and
    # preorder/subscription apps write them: order_type, ships_on (preorders), next_renewal (subscriptions)
    attributes: dict[str, str] = field(default_factory=dict)
    return_status: str = "NO_RETURN"  # OrderReturnStatus: RETURN_REQUESTED, IN_PROGRESS, RETURNED...

    @property
    def total(self) -> Decimal:
        return sum((li.price * li.quantity for li in self.line_items), Decimal("0")) + self.shipping_price + self.tax

    @property
    def refunded(self) -> Decimal:
        return sum((Decimal(r["amount"]) for r in self.refunds), Decimal("0"))


@dataclass
class CustomerState:
    id: int
    email: str | None
    locale: str
    tags: list[str] = field(default_factory=list)
    chargebacks: int = 0


class World:
    def __init__(self, clock: Clock | None = None, seed: int = 7, shop: str = "sandbox.myshopify.com"):
        self.clock = clock or Clock()
        self.shop = shop
        self.lock = threading.RLock()
        self.rnd = random.Random(seed)
        self.products: list[Product] = build_catalogue(seed)
        self.orders: dict[int, OrderState] = {}
        self.customers: dict[int, CustomerState] = {}
        self.fulfillments: dict[int, list[Any]] = {}  # order id -> sandbox.operations.Fulfillment
        self._ids = itertools.count(5_000_000_001)
        self._number = itertools.count(1001)
        self.listeners: list[Callable[[str, OrderState, Any], None]] = []  # (topic, order, subject) -> None

    # ------------------------------------------------------------- catalogue

    def variant_by_sku(self, sku: str) -> tuple[Product, Variant] | None:
        for p in self.products:
            for v in p.variants:
                if v.sku == sku:
                    return p, v
        return None

    def ensure_sku(self, sku: str, price: str = "10.00", tags: list[str] | None = None) -> tuple[Product, Variant]:
        """A SKU a scenario names and the catalogue lacks is created with 100 available."""
        with self.lock:
            found = self.variant_by_sku(sku)
            if found:
                return found
            pid, vid, iid = next(self._ids), next(self._ids), next(self._ids)
            v = Variant(id=vid, sku=sku, title="Default", price=Decimal(price), inventory_item_id=iid, available=100)
            p = Product(id=pid, title=sku, handle=sku.lower(), tags=list(tags or []), variants=[v])
            self.products.append(p)
            return p, v

    # ------------------------------------------------------------- orders

    def _customer_for(self, email: str | None, locale: str) -> CustomerState:
        for c in self.customers.values():
            if email and c.email == email:
                return c
        c = CustomerState(id=next(self._ids), email=email, locale=locale)
        self.customers[c.id] = c
        return c

    def _add_chargeback_history(self, customer: CustomerState, wanted: int, now: datetime) -> None:
        """Chargebacks live on past orders (Order.disputes): add closed historical orders that carry
        them, placed months ago and sending no webhooks, until the customer has `wanted`."""
        while customer.chargebacks < wanted:
            when = now - timedelta(days=90 + 7 * customer.chargebacks)
            oid = next(self._ids)
            past = OrderState(
                id=oid, name=f"#H{oid % 100000}", created_at=when, updated_at=when, email=customer.email, phone=None,
                customer_locale=customer.locale, customer_id=customer.id, tags=[], note="historical", line_items=[],
                shipping_address={}, currency="USD", gateways=["shopify_payments"], risk="LOW",
                order_type="standard", shipping_method="standard", fulfillment_status="FULFILLED",
                disputes=[{"id": next(self._ids), "initiatedAs": "CHARGEBACK", "status": "LOST"}])
            self.orders[oid] = past
            customer.chargebacks += 1

    def create_order(self, data: dict[str, Any]) -> OrderState:
        """Place an order from the scenario-format fields (customer, shipping_address, line_items...)."""
        country = (data.get("shipping_address") or {}).get("country_code")
        if country is not None and country not in _country_codes():
            raise ValueError(f"shipping_address.country_code: {country!r} is not a country Shopify accepts")
        with self.lock:
            now = self.clock.now()
            cust_in = data.get("customer") or {}
            customer = self._customer_for(cust_in.get("email"), cust_in.get("locale") or "en")
            if "chargebacks" in cust_in:
                self._add_chargeback_history(customer, int(cust_in["chargebacks"]), now)
            for t in cust_in.get("tags") or []:
                if t not in customer.tags:
                    customer.tags.append(t)
            lines = []
            for li in data.get("line_items") or []:
                p, v = self.ensure_sku(li["sku"], str(li.get("price", "10.00")), li.get("tags"))
                qty = int(li.get("quantity", 1))
                v.available -= qty
                v.committed += qty
                lines.append(LineItemState(id=next(self._ids), sku=v.sku, title=f"{p.title} - {v.title}",
                                           quantity=qty, price=Decimal(str(li.get("price", v.price))),
                                           variant_id=v.id, product_id=p.id, tags=list(p.tags)))
            oid = next(self._ids)
            gateway = data.get("gateway") or "shopify_payments"
            order = OrderState(
                id=oid, name=f"#{next(self._number)}", created_at=now, updated_at=now,
                email=cust_in.get("email"), phone=cust_in.get("phone"), customer_locale=cust_in.get("locale"),
                customer_id=customer.id, tags=sorted(set(data.get("tags") or [])), note=data.get("note"),
                shipping_address=dict(data.get("shipping_address") or {}), line_items=lines,
                currency=data.get("currency") or "USD", gateways=[gateway],
                risk=_RISK.get(str(data.get("risk") or "low"), "LOW"), order_type=data.get("order_type") or "standard",
                shipping_method=data.get("shipping") or "standard",
                shipping_price=Decimal(str(data.get("shipping_price") or "0")), tax=Decimal(str(data.get("tax") or "0")),
                financial_status="PENDING" if gateway == "manual" else "PAID",
            )
            order.attributes = _attributes(data, order)
            # preorder lines wait in their own SCHEDULED fulfillment order (a split shipment when the
            # order mixes them with in-stock items); a `preorder` order has only preorder lines
            preorder_ids = {li.id for li, d in zip(lines, data.get("line_items") or [])
                            if d.get("preorder") or order.order_type == "preorder"}
            ships_on = datetime.fromisoformat(order.attributes["ships_on"]).replace(tzinfo=now.tzinfo) \
                if preorder_ids else None
            in_stock = [li.id for li in lines if li.id not in preorder_ids]
            if in_stock or not lines:
                order.fulfillment_orders.append(FulfillmentOrderState(id=next(self._ids), line_item_ids=in_stock))
            if preorder_ids:
                order.fulfillment_orders.append(FulfillmentOrderState(
                    id=next(self._ids), line_item_ids=[li.id for li in lines if li.id in preorder_ids],
                    status="SCHEDULED", fulfill_at=ships_on))
            self.orders[oid] = order
        self._notify("orders/create", order)
        return order

    def touch(self, order: OrderState, topic: str = "orders/updated", subject: Any = None) -> None:
        """Record a change: bump `updated_at` and fire `topic` (subject: the fulfillment or hold)."""
        order.updated_at = max(self.clock.now(), order.updated_at)
        self._notify(topic, order, subject)

    def _notify(self, topic: str, order: OrderState, subject: Any = None) -> None:
        for listener in list(self.listeners):
            listener(topic, order, subject)

    def orders_updated_since(self, since: datetime | None) -> list[OrderState]:
        with self.lock:
            out = [o for o in self.orders.values() if since is None or o.updated_at > since]
        return sorted(out, key=lambda o: (o.updated_at, o.id))


def _attributes(data: dict[str, Any], order: OrderState) -> dict[str, str]:
    attrs = {"order_type": order.order_type}
    if order.order_type == "preorder" or any(d.get("preorder") for d in data.get("line_items") or []):
        attrs["ships_on"] = str(data.get("ships_on") or (order.created_at + timedelta(days=14)).date().isoformat())
        datetime.fromisoformat(attrs["ships_on"])  # a bad date is a bad order (ValueError)
    if order.order_type == "subscription":
        attrs["next_renewal"] = str(data.get("next_renewal") or (order.created_at + timedelta(days=30)).date().isoformat())
    for k, v in (data.get("attributes") or {}).items():
        attrs[str(k)] = str(v)
    return attrs


def money(v: Decimal | str | int) -> str:
    return f"{Decimal(str(v)):.2f}"


def rest_order(o: OrderState, world: World) -> dict[str, Any]:
    """The order as Shopify's REST webhook payloads write it (snake_case, tags as one string)."""
    addr = dict(o.shipping_address)
    first, _, last = (addr.get("name") or "").partition(" ")
    addr.setdefault("first_name", first)
    addr.setdefault("last_name", last)
    customer = world.customers.get(o.customer_id)
    return {
        "id": o.id,
        "admin_graphql_api_id": f"gid://shopify/Order/{o.id}",
        "name": o.name,
        "order_number": int(o.name.lstrip("#")),
        "email": o.email,
        "phone": o.phone,
        "created_at": iso(o.created_at),
        "updated_at": iso(o.updated_at),
        "customer_locale": o.customer_locale,
        "tags": ", ".join(o.tags),
        "note": o.note,
        "currency": o.currency,
        "total_price": money(o.total),
        "financial_status": o.financial_status.lower(),
        "fulfillment_status": None if o.fulfillment_status == "UNFULFILLED" else o.fulfillment_status.lower(),
        "cancelled_at": iso(o.cancelled_at) if o.cancelled_at else None,
        "cancel_reason": o.cancel_reason.lower() if o.cancel_reason else None,
        "payment_gateway_names": list(o.gateways),
        "note_attributes": [{"name": k, "value": v} for k, v in o.attributes.items()],
        "shipping_address": addr,
        "line_items": [
            {"id": li.id, "sku": li.sku, "title": li.title, "quantity": li.quantity, "price": money(li.price),
             "variant_id": li.variant_id, "product_id": li.product_id}
            for li in o.line_items
        ],
        "shipping_lines": [{"code": o.shipping_method, "title": o.shipping_method.title(),
                            "price": money(o.shipping_price)}],
        "customer": {"id": o.customer_id, "email": customer.email if customer else None,
                     "tags": ", ".join(customer.tags) if customer else ""},
        "refunds": [{"id": r["id"], "created_at": r["created_at"], "note": r.get("note")} for r in o.refunds],
    }


def _fulfilled_line_ids(o: OrderState, f: Any) -> set[int]:
    fo = next((x for x in o.fulfillment_orders if x.id == getattr(f, "fulfillment_order_id", None)), None)
    return set(fo.line_item_ids) if fo else {li.id for li in o.line_items}


def rest_payload(topic: str, o: OrderState, subject: Any, world: World) -> dict[str, Any]:
    """The body Shopify sends for `topic` (orders/*: the order; fulfillments/*: the fulfillment;
    fulfillment_orders/*: the fulfillment order and the hold)."""
    if topic.startswith("fulfillments/") and subject is not None:
        f = subject
        return {
            "id": f.id, "admin_graphql_api_id": f"gid://shopify/Fulfillment/{f.id}", "order_id": o.id,
            "name": f"{o.name}.{len(o.refunds) + 1}", "status": f.status.lower(),
            "shipment_status": f.shipment_status, "tracking_company": f.tracking_company,
            "tracking_number": f.tracking_number, "tracking_numbers": [f.tracking_number],
            "created_at": iso(f.created_at), "updated_at": iso(f.updated_at),
            "line_items": [{"id": li.id, "sku": li.sku, "title": li.title, "quantity": li.quantity}
                           for li in o.line_items if li.id in _fulfilled_line_ids(o, f)],
        }
    if topic == "fulfillment_orders/placed_on_hold" and subject is not None:
        fo, h = subject
        return {"fulfillment_order": {"id": f"gid://shopify/FulfillmentOrder/{fo.id}", "status": fo.status.lower()},
                "remaining_fulfillment_order": None, "fulfillment_hold": {
                    "id": f"gid://shopify/FulfillmentHold/{h.id}", "handle": h.handle, "reason": h.reason.lower(),
                    "reason_notes": h.reason_notes}}
    if topic == "fulfillment_orders/hold_released" and subject is not None:
        fo, gone = subject
        return {"fulfillment_order": {"id": f"gid://shopify/FulfillmentOrder/{fo.id}", "status": fo.status.lower()},
                "released_fulfillment_hold_ids": [f"gid://shopify/FulfillmentHold/{h.id}" for h in gone]}
    if topic == "orders/edited":
        edit = subject or {}
        return {"order_edit": {
            "id": edit.get("id"), "app_id": None, "created_at": iso(o.updated_at), "notify_customer": False,
            "order_id": o.id, "staff_note": edit.get("staff_note") or "", "user_id": None,
            "line_items": {"additions": edit.get("additions", []), "removals": edit.get("removals", [])},
        }}
    return rest_order(o, world)
