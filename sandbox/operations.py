"""Store operations with Shopify's rules: holds, order updates, edits, cancellation, refunds,
fulfillments. Each raises `OpError` with Shopify's code and message where Shopify refuses.

Every operation that changes an order bumps `updated_at` and fires the webhooks Shopify fires.
Callers hold `world.lock`.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sandbox.clock import iso
from sandbox.order_life import OrderLifeActions
from sandbox.world import FulfillmentOrderState, Hold, LineItemState, OrderState, World

HOLD_LIMIT_PER_APP = 10
_ids = itertools.count(9_000_000_001)


class OpError(Exception):
    def __init__(self, message: str, code: str | None = None, field: list[str] | None = None):
        super().__init__(message)
        self.message, self.code, self.field = message, code, field

    def as_user_error(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "message": self.message}
        if self.code:
            out["code"] = self.code
        return out


@dataclass
class Fulfillment:
    id: int
    fulfillment_order_id: int
    tracking_company: str
    tracking_number: str
    status: str = "SUCCESS"
    display_status: str = "CONFIRMED"  # FulfillmentDisplayStatus
    shipment_status: str = "confirmed"  # REST shipment_status
    created_at: Any = None
    updated_at: Any = None


@dataclass
class EditSession:
    id: int
    order_id: int
    quantities: dict[int, int] = field(default_factory=dict)  # line id -> new quantity
    added: list[tuple[int, int]] = field(default_factory=list)  # (variant id, quantity)
    shipping: dict[str, Any] | None = None
    committed: bool = False


@dataclass
class Job:
    id: str
    done: bool = False


class Operations(OrderLifeActions):
    """The store's write side, shared by the GraphQL mutations, the 3PL and the carrier."""

    def __init__(self, world: World, cancel_delay: float = 0.05):
        self.world = world
        self.sessions: dict[int, EditSession] = {}
        self.jobs: dict[str, Job] = {}
        self.refund_keys: dict[str, tuple[Any, dict[str, Any]]] = {}  # idempotency key -> (request, refund)
        self.fulfillments: dict[int, list[Fulfillment]] = world.fulfillments
        self.applied: list[tuple[str, int]] = []  # (operation, order id): what really changed
        self.cancel_delay = cancel_delay

    # ------------------------------------------------------------- lookups

    def order(self, oid: int | None) -> OrderState:
        o = self.world.orders.get(oid) if oid else None
        if o is None:
            raise OpError("Order does not exist", "NOT_FOUND", ["id"])
        return o

    def fulfillment_order(self, fo_id: int | None) -> tuple[FulfillmentOrderState, OrderState]:
        for o in self.world.orders.values():
            for fo in o.fulfillment_orders:
                if fo.id == fo_id:
                    return fo, o
        raise OpError("Fulfillment order does not exist.", "FULFILLMENT_ORDER_NOT_FOUND", ["id"])

    # ------------------------------------------------------------- holds

    def hold(self, fo_id: int, reason: str, handle: str | None, notes: str | None, app: str = "aftercart") -> Hold:
        fo, o = self.fulfillment_order(fo_id)
        if fo.status not in ("OPEN", "IN_PROGRESS", "SCHEDULED", "ON_HOLD"):
            raise OpError(f"The fulfillment order's status {fo.status} does not allow a hold.", "TAKEN", ["id"])
        mine = [h for h in fo.holds if h.app == app]
        if handle and any(h.handle == handle for h in mine):
            raise OpError("The handle provided for the fulfillment hold is already in use by this app for another "
                          "hold on this fulfillment order.", "DUPLICATE_FULFILLMENT_HOLD_HANDLE",
                          ["fulfillmentHold", "handle"])
        if len(mine) >= HOLD_LIMIT_PER_APP:
            raise OpError("The maximum number of fulfillment holds for this fulfillment order has been reached for "
                          "this app.", "FULFILLMENT_ORDER_HOLD_LIMIT_REACHED", ["id"])
        h = Hold(id=next(_ids), handle=handle or "", reason=reason, reason_notes=notes, app=app)
        if fo.status != "ON_HOLD":
            fo.status_before_hold = fo.status
        fo.holds.append(h)
        fo.status = "ON_HOLD"
        self.applied.append(("hold", o.id))
        self.world.touch(o, "fulfillment_orders/placed_on_hold", (fo, h))
        return h

    def release(self, fo_id: int, hold_ids: list[int] | None) -> FulfillmentOrderState:
        """Without hold ids every hold goes, whichever app placed it (as Shopify does)."""
        fo, o = self.fulfillment_order(fo_id)
        if hold_ids is None:
            gone = list(fo.holds)
        else:
            known = {h.id for h in fo.holds}
            missing = [h for h in hold_ids if h not in known]
            if missing:
                raise OpError(f"Fulfillment hold(s) {missing} not found on this fulfillment order.",
                              "FULFILLMENT_ORDER_NOT_FOUND", ["holdIds"])
            gone = [h for h in fo.holds if h.id in hold_ids]
        if not gone:
            return fo
        fo.holds = [h for h in fo.holds if h not in gone]
        if not fo.holds and fo.status == "ON_HOLD":
            fo.status = fo.status_before_hold
        self.applied.append(("release", o.id))
        self.world.touch(o, "fulfillment_orders/hold_released", (fo, gone))
        return fo

    # ------------------------------------------------------------- order update

    def update(self, o: OrderState, fields: dict[str, Any]) -> OrderState:
        if "shippingAddress" in fields and o.fulfillment_status == "FULFILLED":
            raise OpError("Shipping address cannot be changed after the order is fulfilled.", None,
                          ["shippingAddress"])
        changed = False
        for key, attr in (("email", "email"), ("phone", "phone"), ("note", "note")):
            if key in fields and getattr(o, attr) != fields[key]:
                setattr(o, attr, fields[key])
                changed = True
        if fields.get("tags") is not None:
            tags = sorted(set(fields["tags"]))
            changed |= tags != o.tags
            o.tags = tags
        if fields.get("shippingAddress") is not None:
            a = fields["shippingAddress"]
            mapping = {"address1": "address1", "address2": "address2", "city": "city", "zip": "zip",
                       "provinceCode": "province_code", "countryCode": "country_code", "phone": "phone",
                       "company": "company", "firstName": "first_name", "lastName": "last_name"}
            new = dict(o.shipping_address)
            for k, v in a.items():
                if k in mapping:
                    new[mapping[k]] = v
            if "firstName" in a or "lastName" in a:
                new["name"] = f"{new.get('first_name', '')} {new.get('last_name', '')}".strip()
            changed |= new != o.shipping_address
            o.shipping_address = new
        if changed:
            self.applied.append(("update", o.id))
            self.world.touch(o)
        return o

    # ------------------------------------------------------------- order editing

    def edit_begin(self, o: OrderState) -> EditSession:
        if o.cancelled_at:
            raise OpError("The order is cancelled and can't be edited.", None, ["id"])
        s = EditSession(id=next(_ids), order_id=o.id)
        self.sessions[s.id] = s
        return s

    def session(self, sid: int | None) -> EditSession:
        s = self.sessions.get(sid) if sid else None
        if s is None or s.committed:
            raise OpError("The calculated order does not exist or was already committed.", None, ["id"])
        return s

    def edit_set_quantity(self, s: EditSession, line_id: int, quantity: int) -> None:
        o = self.order(s.order_id)
        li = next((x for x in o.line_items if x.id == line_id), None)
        if li is None:
            raise OpError("Line item does not exist on the order.", None, ["lineItemId"])
        if quantity < 0:
            raise OpError("Quantity must be greater than or equal to 0.", None, ["quantity"])
        if o.fulfillment_status == "FULFILLED":
            raise OpError("Can't edit the quantity of a fulfilled line item.", None, ["lineItemId"])
        s.quantities[line_id] = quantity

    def edit_add_variant(self, s: EditSession, variant_id: int, quantity: int, allow_duplicates: bool = False) -> None:
        if quantity <= 0:
            raise OpError("Quantity must be greater than 0.", None, ["quantity"])
        o = self.order(s.order_id)
        if not allow_duplicates and (any(v == variant_id for v, _ in s.added)
                                     or any(li.variant_id == variant_id for li in o.line_items)):
            raise OpError("Variant is already on the order; set allowDuplicates to add it again.", None,
                          ["variantId"])
        found = next(((p, v) for p in self.world.products for v in p.variants if v.id == variant_id), None)
        if found is None:
            raise OpError("Variant does not exist.", None, ["variantId"])
        s.added.append((variant_id, quantity))

    def edit_shipping(self, s: EditSession, title: str | None, price: str | None) -> None:
        s.shipping = {"title": title, "price": price}

    def edit_commit(self, s: EditSession) -> OrderState:
        o = self.order(s.order_id)
        if o.cancelled_at:
            raise OpError("The order is cancelled and can't be edited.", None, ["id"])
        if o.fulfillment_status == "FULFILLED" and (s.quantities or s.added):
            raise OpError("Can't edit line items that are already fulfilled.", None, ["id"])
        additions: list[dict[str, Any]] = []
        removals: list[dict[str, Any]] = []
        for line_id, qty in s.quantities.items():
            li = next(x for x in o.line_items if x.id == line_id)
            delta = qty - li.quantity
            if delta:
                (additions if delta > 0 else removals).append({"id": li.id, "delta": abs(delta)})
            found = self.world.variant_by_sku(li.sku)
            if found:
                found[1].available -= delta
                found[1].committed += delta
            li.quantity = qty
        o.line_items = [li for li in o.line_items if li.quantity > 0]
        for variant_id, qty in s.added:
            p, v = next((p, v) for p in self.world.products for v in p.variants if v.id == variant_id)
            v.available -= qty
            v.committed += qty
            li = LineItemState(id=next(_ids), sku=v.sku, title=f"{p.title} - {v.title}", quantity=qty, price=v.price,
                               variant_id=v.id, product_id=p.id, tags=list(p.tags))
            o.line_items.append(li)
            additions.append({"id": li.id, "delta": qty})
            for fo in o.fulfillment_orders:
                if fo.status not in ("CLOSED", "CANCELLED"):
                    fo.line_item_ids.append(li.id)
                    break
        if s.shipping:
            if s.shipping.get("title"):
                o.shipping_method = s.shipping["title"].lower()
            if s.shipping.get("price") is not None:
                o.shipping_price = Decimal(str(s.shipping["price"]))
        for fo in o.fulfillment_orders:
            fo.line_item_ids = [i for i in fo.line_item_ids if any(li.id == i for li in o.line_items)]
        s.committed = True
        self.applied.append(("edit", o.id))
        self.world.touch(o, "orders/edited", {"id": s.id, "additions": additions, "removals": removals})
        self.world.touch(o, "orders/updated")
        return o

    # ------------------------------------------------------------- cancellation

    def cancel(self, o: OrderState, reason: str, restock: bool, refund: bool, staff_note: str | None) -> Job:
        if o.cancelled_at:
            raise OpError("Cannot cancel an order that has already been cancelled.", "INVALID", ["orderId"])
        if o.fulfillment_status == "FULFILLED":
            raise OpError("Cannot cancel an order that has been fulfilled.", "INVALID", ["orderId"])
        job = Job(id=f"gid://shopify/Job/{uuid.uuid4()}")
        self.jobs[job.id] = job

        def run():
            with self.world.lock:
                if o.cancelled_at is None:
                    o.cancelled_at, o.cancel_reason = self.world.clock.now(), reason
                    for fo in o.fulfillment_orders:
                        fo.status, fo.holds = "CANCELLED", []
                    if restock:
                        for li in o.line_items:
                            found = self.world.variant_by_sku(li.sku)
                            if found:
                                found[1].available += li.quantity
                                found[1].committed -= li.quantity
                    if refund:
                        owed = self.refundable(o)
                        if owed > 0:
                            self._record_refund(o, owed, note=staff_note or "order cancelled")
                    self.applied.append(("cancel", o.id))
                    self.world.touch(o, "orders/cancelled")
                    self.world.touch(o, "orders/updated")
                job.done = True

        if self.cancel_delay:
            threading.Timer(self.cancel_delay, run).start()
        else:
            run()
        return job

    # ------------------------------------------------------------- refunds

    def refundable(self, o: OrderState) -> Decimal:
        captured = Decimal("0") if o.financial_status == "PENDING" else o.total
        return captured - o.refunded

    def _record_refund(self, o: OrderState, amount: Decimal, note: str | None) -> dict[str, Any]:
        r = {"id": next(_ids), "amount": f"{amount:.2f}", "created_at": iso(self.world.clock.now()), "note": note}
        o.refunds.append(r)
        o.financial_status = "REFUNDED" if o.refunded >= o.total else "PARTIALLY_REFUNDED"
        self.applied.append(("refund", o.id))
        return r

    def refund(self, o: OrderState, request: dict[str, Any], key: str | None) -> dict[str, Any]:
        if not key:
            raise OpError("The @idempotent directive with a key is required for refundCreate.", "IDEMPOTENCY_KEY_REQUIRED")
        if key in self.refund_keys:
            previous_request, refund = self.refund_keys[key]
            if previous_request != request:
                raise OpError("This idempotency key was already used with different parameters.",
                              "IDEMPOTENCY_CONCURRENT_REQUEST")
            return refund
        amount = Decimal("0")
        for t in request.get("transactions") or []:
            amount += Decimal(str(t["amount"]))
        for rli in request.get("refundLineItems") or []:
            li = next((x for x in o.line_items if x.id == rli["lineItemId"]), None)
            if li is None:
                raise OpError("Line item does not exist on the order.", None, ["refundLineItems", "lineItemId"])
            amount += li.price * int(rli["quantity"])
        if (request.get("shipping") or {}).get("fullRefund"):
            amount += o.shipping_price
        elif (request.get("shipping") or {}).get("amount") is not None:
            amount += Decimal(str(request["shipping"]["amount"]))
        if amount <= 0:
            raise OpError("Refund amount must be greater than zero.", None, ["transactions"])
        if amount > self.refundable(o) and not request.get("allowOverRefunding"):
            raise OpError(f"Refund amount {amount:.2f} exceeds the refundable amount {self.refundable(o):.2f}.",
                          None, ["transactions"])
        refund = self._record_refund(o, amount, request.get("note"))
        self.refund_keys[key] = (request, refund)
        self.world.touch(o)
        return refund

    # ------------------------------------------------------------- fulfillments (3PL and carrier)

    def fulfill(self, o: OrderState, company: str, number: str, fulfillment_order_id: int | None = None) -> Fulfillment:
        """Ship one fulfillment order (the given one, else the first open one): a parcel with its lines."""
        if o.cancelled_at:
            raise OpError("Cannot fulfill a cancelled order.", None, ["orderId"])
        open_fos = [fo for fo in o.fulfillment_orders if fo.status in ("OPEN", "IN_PROGRESS")
                    and fulfillment_order_id in (None, fo.id)]
        if not open_fos:
            raise OpError("The order has no fulfillment order that can be fulfilled (on hold or closed).", None,
                          ["fulfillmentOrderId"])
        fo = open_fos[0]
        now = self.world.clock.now()
        f = Fulfillment(id=next(_ids), fulfillment_order_id=fo.id, tracking_company=company, tracking_number=number,
                        created_at=now, updated_at=now)
        fo.status = "CLOSED"
        self.fulfillments.setdefault(o.id, []).append(f)
        if all(x.status in ("CLOSED", "CANCELLED") for x in o.fulfillment_orders):
            o.fulfillment_status = "FULFILLED"
        else:
            o.fulfillment_status = "PARTIALLY_FULFILLED"
        self.applied.append(("fulfill", o.id))
        self.world.touch(o, "fulfillments/create", f)
        self.world.touch(o)
        return f

    def tracking_event(self, number: str, shipment_status: str) -> tuple[OrderState, Fulfillment]:
        display = {"in_transit": "IN_TRANSIT", "out_for_delivery": "OUT_FOR_DELIVERY", "delivered": "DELIVERED",
                   "attempted_delivery": "ATTEMPTED_DELIVERY", "failure": "FAILED_DELIVERY", "delayed": "DELAYED"}
        if shipment_status not in display:
            raise OpError(f"unknown carrier status {shipment_status!r}; known: {', '.join(display)}")
        for oid, fs in self.fulfillments.items():
            for f in fs:
                if f.tracking_number == number:
                    o = self.order(oid)
                    f.shipment_status, f.display_status = shipment_status, display[shipment_status]
                    f.updated_at = self.world.clock.now()
                    self.world.touch(o, "fulfillments/update", f)
                    return o, f
        raise OpError(f"no fulfillment with tracking number {number!r}")
