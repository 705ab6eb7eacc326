"""SOP 1 and 8: which message an order event deserves, in which language, or none, and why.

Pure: every function reads (order facts, event, policy, now) and returns a value with its reasons.
The drain turns deliveries into events (`shipment_events`, `order_events`), decides each with
`decide_message`, and sends what was decided through the effects ledger under the decision's
`effect_key` (one message per order, template and state change, ever).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from domain.messages import pick_language
from domain.orders import parse_timestamp, split_tags
from domain.policy import Policy
from domain.vocab import STAGES

_BEFORE_SHIPPING = STAGES[: STAGES.index("shipped")]
# the stages at which an event's message still matches the order (or the parcel, for shipments)
WINDOWS: dict[str, tuple[str, ...]] = {
    "order_placed": _BEFORE_SHIPPING,
    "payment_captured": _BEFORE_SHIPPING,
    "released": ("released", "picking", "packed", "label_created"),
    "shipped": ("shipped", "in_transit"),
    "out_for_delivery": ("out_for_delivery",),
    "delivered": ("delivered",),
    "delayed": ("shipped", "in_transit", "out_for_delivery"),
}
PARCEL_EVENTS = frozenset({"shipped", "out_for_delivery", "delivered", "delayed"})
# the carrier's shipment_status (Shopify fulfillment events) as a parcel stage
SHIPMENT_STAGE = {None: "shipped", "": "shipped", "confirmed": "shipped", "label_printed": "shipped",
                  "label_purchased": "shipped", "in_transit": "in_transit", "delayed": "in_transit",
                  "out_for_delivery": "out_for_delivery", "attempted_delivery": "out_for_delivery",
                  "delivered": "delivered", "failure": "in_transit", "ready_for_pickup": "out_for_delivery"}


@dataclass(frozen=True)
class Line:
    title: str
    quantity: int
    price: str | None
    sku: str | None = None


@dataclass(frozen=True)
class MessageOrder:
    """What a message decision reads about an order (from its latest snapshot)."""

    id: int
    name: str
    email: str | None
    customer_locale: str | None
    country_code: str | None
    tags: tuple[str, ...]
    order_type: str
    stage: str
    cancelled: bool
    financial_status: str | None
    currency: str
    total: str | None
    lines: tuple[Line, ...]
    attributes: dict[str, str] = field(default_factory=dict)
    first_name: str | None = None


def message_order(snapshot: dict[str, Any], stage: str) -> MessageOrder | None:
    """The facts of a REST order snapshot; None when it is not one."""
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("id"), int):
        return None
    attrs = {str(a.get("name")): str(a.get("value")) for a in snapshot.get("note_attributes") or []
             if isinstance(a, dict) and a.get("name")}
    addr = snapshot.get("shipping_address") if isinstance(snapshot.get("shipping_address"), dict) else {}
    customer = snapshot.get("customer") if isinstance(snapshot.get("customer"), dict) else {}
    first = customer.get("first_name") or addr.get("first_name") or (str(addr.get("name") or "").split(" ")[0] or None)
    return MessageOrder(
        id=snapshot["id"], name=str(snapshot.get("name") or f"#{snapshot['id']}"), email=snapshot.get("email") or None,
        customer_locale=snapshot.get("customer_locale") or None, country_code=addr.get("country_code") or None,
        tags=tuple(split_tags(snapshot.get("tags"))), order_type=attrs.get("order_type", "standard"),
        stage="cancelled" if snapshot.get("cancelled_at") else stage, cancelled=bool(snapshot.get("cancelled_at")),
        financial_status=snapshot.get("financial_status"), currency=str(snapshot.get("currency") or "USD"),
        total=snapshot.get("total_price"),
        lines=tuple(Line(str(li.get("title") or li.get("sku") or "?"), int(li.get("quantity") or 0),
                         li.get("price"), li.get("sku")) for li in snapshot.get("line_items") or []
                    if isinstance(li, dict)),
        attributes=attrs, first_name=first,
    )


@dataclass(frozen=True)
class OrderEvent:
    order_id: int
    event: str  # a key of WINDOWS
    at: datetime
    ref: str = ""  # the fulfillment (parcel) a shipment event is about
    parcel_stage: str | None = None  # that parcel's latest stage, for the window check
    detail: dict[str, Any] = field(default_factory=dict)  # tracking, the parcel's lines


@dataclass(frozen=True)
class MessageDecision:
    order_id: int
    event: str
    template: str | None
    language: str
    effect_key: str
    reasons: tuple[str, ...]
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def send(self) -> bool:
        return self.template is not None


def effect_key(order_id: int, template: str, ref: str = "") -> str:
    """One message per order, template and state change: a parcel's events are keyed by the parcel."""
    return f"msg:{order_id}:{template}" + (f":{ref}" if ref else "")


def decide_message(ev: OrderEvent, order: MessageOrder, policy: Policy, now: datetime) -> MessageDecision:
    comm = policy.communication
    template = comm.events.get(ev.event)
    lang = pick_language(policy, order.customer_locale, order.country_code)
    key = effect_key(order.id, template or ev.event, ev.ref if ev.event in PARCEL_EVENTS else "")

    def no(reason: str) -> MessageDecision:
        return MessageDecision(order.id, ev.event, None, lang.language, key, (reason,))

    if template is None:
        return no(f"the policy sends nothing on {ev.event}")
    manual = sorted(set(order.tags) & set(comm.suppress_for_tags))
    if manual:
        return no(f"{', '.join(manual)}: a person handles this order, no automatic messages")
    if not order.email:
        return no("the order has no email address")
    if order.cancelled:
        return no(f"the order is cancelled: a {template} message no longer matches")
    stage = ev.parcel_stage if ev.event in PARCEL_EVENTS and ev.parcel_stage else order.stage
    if stage not in WINDOWS[ev.event]:
        return no(f"the {'parcel' if ev.event in PARCEL_EVENTS else 'order'} is {stage}: a {template} message "
                  "no longer matches")
    if ev.event == "payment_captured" and order.financial_status not in ("paid", "partially_paid"):
        return no(f"payment is {order.financial_status}, not captured")
    reasons = (f"{ev.event} -> {template}", f"language {lang.language}: {lang.reason}", f"stage {stage}")
    return MessageDecision(order.id, ev.event, template, lang.language, key, reasons,
                           message_context(template, ev, order, policy, now))


# ------------------------------------------------------------------ what the message says

def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d else None


def add_business_days(start: date, days: int) -> date:
    d = start
    while days > 0:
        d += timedelta(days=1)
        if d.weekday() < 5:
            days -= 1
    return d


def _amount(value: Any) -> str | None:
    try:
        return str(Decimal(str(value))) if value not in (None, "") else None
    except InvalidOperation:
        return None


def message_context(template: str, ev: OrderEvent, order: MessageOrder, policy: Policy,
                    now: datetime, fragile: bool = False) -> dict[str, Any]:
    """Everything a template shows (JSON values: the ledger keeps it to send again), by order type: a
    gift never shows prices, a preorder says when it ships, a subscription names the next renewal,
    fragile items bring care notes, a split parcel lists its own items and what is still to come."""
    comm = policy.communication
    market = policy.market_for(order.country_code)
    gift = order.order_type == "gift"
    lines = [{"title": li.title, "quantity": li.quantity, "price": None if gift else _amount(li.price)}
             for li in order.lines]
    ctx: dict[str, Any] = {
        "order_name": order.name, "customer_name": order.first_name or (order.email or "").split("@")[0],
        "order_type": order.order_type, "gift": gift, "currency": order.currency,
        "total": None if gift else _amount(order.total), "items": lines, "timezone": market.timezone,
        "preorder_ships_on": _iso(_day(order.attributes.get("ships_on"))),
        "next_renewal": _iso(_day(order.attributes.get("next_renewal"))) if order.order_type == "subscription" else None,
        "fragile": fragile, "links": {},
    }
    if template == "order_confirmation":
        # when it ships: the policy's promise for what is in stock (a mixed order also names the
        # preorder date), the preorder date alone for a preorder, nothing for digital goods
        ctx["ships_by"] = None if order.order_type in ("preorder", "digital") else add_business_days(
            now.astimezone(ZoneInfo(market.timezone)).date(), comm.ships_within_days).isoformat()
        ctx["self_serve"] = order.stage == "unfulfilled"  # the flow adds the signed links
    if ev.event in PARCEL_EVENTS:
        parcel = ev.detail.get("lines") or []
        shipped = set(ev.detail.get("shipped_titles") or ()) | {p.get("title") for p in parcel}
        ctx["tracking"] = {k: ev.detail.get(k) for k in ("company", "number", "url")}
        ctx["parcel"] = [{"title": p.get("title") or p.get("sku"), "quantity": p.get("quantity")} for p in parcel]
        # a split shipment names what is still to come (and when, for preorder items)
        ctx["still_to_come"] = [{"title": li.title, "quantity": li.quantity} for li in order.lines
                                if li.title not in shipped] if parcel else []
        ctx["delivered_at"] = ev.at.isoformat() if ev.event == "delivered" else None
    return ctx


# ------------------------------------------------------------------ events from deliveries

@dataclass(frozen=True)
class Parcel:
    fulfillment_id: int
    order_id: int
    stage: str
    updated_at: datetime
    tracking_number: str | None = None


def shipment_event(payload: Any, known: Parcel | None, policy: Policy) -> tuple[Parcel | None, OrderEvent | None, str]:
    """A `fulfillments/create|update` payload against what we know of that parcel: the parcel's new
    state (None: nothing to record), the event it makes (None: nothing new) and why.

    A payload older than the one we hold is stale (events arrive out of order); the same or an
    earlier stage is a repeat; `delayed` (the policy's carrier statuses) makes a delay event once.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), int) or not isinstance(
            payload.get("order_id"), int):
        return None, None, "not a fulfillment payload"
    at = parse_timestamp(payload.get("updated_at")) or parse_timestamp(payload.get("created_at"))
    if at is None:
        return None, None, "fulfillment payload without updated_at"
    status = payload.get("shipment_status")
    stage = SHIPMENT_STAGE.get(status, "shipped")
    if known is not None and at < known.updated_at:
        return None, None, f"stale: {status} from {at.isoformat()} is older than what we hold"
    detail = {"company": payload.get("tracking_company"), "number": payload.get("tracking_number"),
              "url": payload.get("tracking_url"),
              "lines": [{"title": li.get("title"), "sku": li.get("sku"), "quantity": li.get("quantity")}
                        for li in payload.get("line_items") or [] if isinstance(li, dict)]}
    parcel = Parcel(payload["id"], payload["order_id"], stage, at, payload.get("tracking_number"))
    ref = str(payload["id"])
    if status in policy.communication.delay_notice_on_carrier_status:
        if known is not None and STAGES.index(known.stage) > STAGES.index(stage):
            return None, None, f"{status} after {known.stage}: nothing new"
        return parcel, OrderEvent(payload["order_id"], "delayed", at, ref, stage, detail), f"carrier reports {status}"
    if known is not None and STAGES.index(stage) <= STAGES.index(known.stage):
        return None, None, f"{status or 'created'}: the parcel is already {known.stage}"
    event = {"shipped": "shipped", "in_transit": "shipped", "out_for_delivery": "out_for_delivery",
             "delivered": "delivered"}[stage]
    if event == "shipped" and known is not None:  # in transit after we announced the shipment
        return parcel, None, "in transit: already announced"
    return parcel, OrderEvent(payload["order_id"], event, at, ref, stage, detail), f"parcel {stage}"


def order_events(topic: str, payload: Any, payment_pending: bool) -> tuple[list[OrderEvent], bool]:
    """Events an order snapshot makes: placed (orders/create), payment captured (paid after we saw it
    pending). Returns the events and whether payment is still pending afterwards."""
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), int):
        return [], payment_pending
    at = parse_timestamp(payload.get("updated_at")) or datetime.min
    status = payload.get("financial_status")
    events = []
    if topic == "orders/create" or payload.get("source") == "reconciliation":
        events.append(OrderEvent(payload["id"], "order_placed", at))
    if status in ("pending", "authorized"):
        return events, True
    if payment_pending and status in ("paid", "partially_paid"):
        events.append(OrderEvent(payload["id"], "payment_captured", at))
    return events, False


# ------------------------------------------------------------------ a promised date that passed

def promised_by(shipped_at: datetime, shipping_method: str | None, policy: Policy, country_code: str | None) -> date:
    """The last day of the delivery promise: business days (policy, by shipping method) after the
    day the carrier took the parcel, in the market's time zone."""
    days = policy.communication.promised_transit_days
    n = days.get(str(shipping_method or ""), days.get("*", 5))
    tz = ZoneInfo(policy.market_for(country_code).timezone)
    return add_business_days(shipped_at.astimezone(tz).date(), n)


def late_parcel_event(parcel: Parcel, shipped_at: datetime, shipping_method: str | None, country_code: str | None,
                      policy: Policy, now: datetime, detail: dict[str, Any] | None = None) -> OrderEvent | None:
    """A `delayed` event for a parcel still on its way after its promised day ended (market time)."""
    if parcel.stage not in WINDOWS["delayed"]:
        return None
    tz = ZoneInfo(policy.market_for(country_code).timezone)
    if now.astimezone(tz).date() <= promised_by(shipped_at, shipping_method, policy, country_code):
        return None
    return OrderEvent(parcel.order_id, "delayed", now, str(parcel.fulfillment_id), parcel.stage,
                      {**(detail or {}), "promise_passed": True})


# ------------------------------------------------------------------ post-delivery follow-up

def followup_due(delivered_at: datetime, policy: Policy, country_code: str | None) -> datetime:
    """Three days (policy) after delivery, at 10:00 (policy) in the market's time zone, as UTC."""
    f = policy.communication.followup
    tz = ZoneInfo(policy.market_for(country_code).timezone)
    local_day = delivered_at.astimezone(tz).date() + timedelta(days=f.days_after_delivery)
    return datetime.combine(local_day, time(f.local_time.hour, f.local_time.minute), tzinfo=tz).astimezone(
        ZoneInfo("UTC"))


@dataclass(frozen=True)
class FollowupDecision:
    order_id: int
    send: bool
    reasons: tuple[str, ...]


def decide_followup(order: MessageOrder, open_items: dict[str, int], policy: Policy) -> FollowupDecision:
    """Send the follow-up unless a ticket, return or cancellation (policy) is open for the order,
    the order is handled by a person, cancelled, or has no email."""
    comm = policy.communication
    manual = sorted(set(order.tags) & set(comm.suppress_for_tags))
    if manual:
        return FollowupDecision(order.id, False, (f"{', '.join(manual)}: no automatic messages",))
    if not order.email:
        return FollowupDecision(order.id, False, ("the order has no email address",))
    if order.cancelled:
        return FollowupDecision(order.id, False, ("the order is cancelled",))
    open_now = [f"{n} open {kind}{'s' if n > 1 else ''}" for kind, n in sorted(open_items.items())
                if kind in comm.followup.suppress_when_open and n]
    if open_now:
        return FollowupDecision(order.id, False, (f"suppressed: {', '.join(open_now)}",))
    return FollowupDecision(order.id, True, ("delivered, nothing open",))
