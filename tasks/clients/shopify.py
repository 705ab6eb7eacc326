"""Shopify Admin GraphQL client over httpx: paces itself, retries, maps userErrors to errors.

No Prefect here: tasks wrap it. The same client talks to the sandbox and to a real store;
only the endpoint URL and the access token differ.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator

import httpx

from tasks.clients.documents import document
from tasks.clients.shopify_reads import SopReads, order_gid

log = logging.getLogger("aftercart.shopify")



class ShopifyError(Exception):
    """The API refused the request (GraphQL errors, 4xx other than 429)."""


class ShopifyUnavailable(ShopifyError):
    """Retries ran out on THROTTLED, 429 or 5xx."""


@dataclass
class UserError(ShopifyError):
    mutation: str
    errors: list[dict[str, Any]]

    def __str__(self) -> str:
        return f"{self.mutation}: " + "; ".join(
            f"{'.'.join(map(str, e.get('field') or []))}: {e.get('message')} ({e.get('code', '')})" for e in self.errors)

    @property
    def codes(self) -> list[str]:
        return [e.get("code") for e in self.errors if e.get("code")]


@dataclass
class CallStats:
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    server_errors: int = 0
    cost_points: float = 0.0


class ShopifyClient(SopReads):
    def __init__(self, http: httpx.Client, endpoint: str, access_token: str, max_attempts: int = 8,
                 backoff_base: float = 0.25, backoff_cap: float = 8.0, sleep: Callable[[float], None] = time.sleep,
                 rnd: random.Random | None = None):
        self.http, self.endpoint, self.token = http, endpoint, access_token
        self.max_attempts, self.backoff_base, self.backoff_cap = max_attempts, backoff_base, backoff_cap
        self.sleep = sleep
        self.rnd = rnd or random.Random()
        self.stats = CallStats()
        self.retried = False  # whether the last call needed more than one attempt
        self._cost_by_doc: dict[str, float] = {}  # last requestedQueryCost per document, for pacing
        self._available: float | None = None
        self._restore: float | None = None
        self._seen_at = 0.0

    # ------------------------------------------------------------- transport

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_cap, self.backoff_base * (2 ** attempt)) * (0.5 + self.rnd.random() / 2)

    def _pace(self, expected_cost: float) -> None:
        """Wait until the bucket (as last reported) has room for the next call."""
        if self._available is None or not self._restore:
            return
        available = self._available + (time.monotonic() - self._seen_at) * self._restore
        if available < expected_cost:
            self.sleep(min(self.backoff_cap, (expected_cost - available) / self._restore))

    def _note_cost(self, body: dict[str, Any]) -> float | None:
        cost = (body.get("extensions") or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        if "currentlyAvailable" in status:
            self._available = float(status["currentlyAvailable"])
            self._restore = float(status.get("restoreRate") or 0) or None
            self._seen_at = time.monotonic()
        actual = cost.get("actualQueryCost")
        if actual is not None:
            self.stats.cost_points += float(actual)
        return cost.get("requestedQueryCost")

    def execute(self, name: str, variables: dict[str, Any] | None = None, expected_cost: float = 10) -> dict[str, Any]:
        """Run the named document; return `data`. Retries THROTTLED, 429 (Retry-After) and 5xx."""
        payload = {"query": document(name), "variables": variables or {}, "operationName": name}
        last = ""
        self.retried = False
        for attempt in range(self.max_attempts):
            self.retried = attempt > 0
            self._pace(self._cost_by_doc.get(name, expected_cost))
            self.stats.calls += 1
            if attempt:
                self.stats.retries += 1
            try:
                r = self.http.post(self.endpoint, json=payload,
                                   headers={"X-Shopify-Access-Token": self.token, "Content-Type": "application/json"})
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                self.sleep(self._backoff(attempt))
                continue
            if r.status_code == 429:
                self.stats.throttled += 1
                last = "HTTP 429"
                try:
                    self._note_cost(r.json())
                except ValueError:
                    pass
                retry_after = r.headers.get("retry-after")
                self.sleep(float(retry_after) if retry_after and retry_after.replace(".", "", 1).isdigit()
                           else self._backoff(attempt))
                continue
            if r.status_code >= 500:
                self.stats.server_errors += 1
                last = f"HTTP {r.status_code}"
                self.sleep(self._backoff(attempt))
                continue
            try:
                body = r.json()
            except ValueError:
                raise ShopifyError(f"{name}: HTTP {r.status_code}, body is not JSON") from None
            if r.status_code >= 400:
                raise ShopifyError(f"{name}: HTTP {r.status_code}: {body.get('errors')}")
            requested = self._note_cost(body)
            if requested:
                self._cost_by_doc[name] = float(requested)
            errors = body.get("errors") or []
            if any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors):
                self.stats.throttled += 1
                last = "THROTTLED"
                if requested and self._restore:
                    self.sleep(min(self.backoff_cap, max(0.0, (requested - (self._available or 0)) / self._restore)))
                else:
                    self.sleep(self._backoff(attempt))
                continue
            if errors:
                raise ShopifyError(f"{name}: " + "; ".join(str(e.get("message")) for e in errors))
            return body.get("data") or {}
        raise ShopifyUnavailable(f"{name}: gave up after {self.max_attempts} attempts (last: {last})")

    def mutate(self, name: str, variables: dict[str, Any], field: str, errors_field: str = "userErrors") -> dict[str, Any]:
        """Run a mutation document; raise UserError when Shopify answers with userErrors."""
        data = self.execute(name, variables, expected_cost=10)
        result = data.get(field) or {}
        errs = result.get(errors_field) or []
        if errs:
            raise UserError(field, errs)
        return result

    # ------------------------------------------------------------- queries

    def paginate(self, name: str, field: str, variables: dict[str, Any], page_size: int,
                 cost_per_node: float) -> Iterator[dict[str, Any]]:
        """Every node of a connection query, page by page (cursor `after`)."""
        after = None
        while True:
            conn = self.execute(name, {**variables, "first": page_size, "after": after},
                                expected_cost=2 + page_size * cost_per_node)[field]
            yield from conn["nodes"]
            if not conn["pageInfo"]["hasNextPage"]:
                return
            after = conn["pageInfo"]["endCursor"]

    def orders_updated_since(self, since: datetime | None, page_size: int = 15) -> Iterator[dict[str, Any]]:
        query = f"updated_at:>'{since.isoformat()}'" if since else "updated_at:>'1970-01-01T00:00:00Z'"
        return self.paginate("OrdersUpdatedSince", "orders", {"query": query}, page_size, 56)

    def order(self, order_id: int) -> dict[str, Any] | None:
        return self.execute("OrderById", {"id": order_gid(order_id)})["order"]

    def fulfillment_orders(self, order_id: int) -> list[dict[str, Any]]:
        order = self.execute("FulfillmentOrdersOfOrder", {"id": order_gid(order_id)})["order"]
        if order is None:
            raise ShopifyError(f"order {order_id} does not exist")
        return order["fulfillmentOrders"]["nodes"]

    def open_fulfillment_orders(self, query: str | None = None, page_size: int = 50) -> Iterator[dict[str, Any]]:
        return self.paginate("OpenFulfillmentOrders", "fulfillmentOrders", {"query": query}, page_size, 3)

    def products(self, query: str | None = None, page_size: int = 25) -> Iterator[dict[str, Any]]:
        return self.paginate("Products", "products", {"query": query}, page_size, 25)

    def inventory(self, inventory_item_id: str) -> dict[str, int]:
        """Quantities by name (available, committed, on_hand), summed over locations."""
        item = self.execute("InventoryOfItem", {"id": inventory_item_id})["inventoryItem"]
        if item is None:
            raise ShopifyError(f"inventory item {inventory_item_id} does not exist")
        out: dict[str, int] = {}
        for level in item["inventoryLevels"]["nodes"]:
            for q in level["quantities"]:
                out[q["name"]] = out.get(q["name"], 0) + q["quantity"]
        return out

    def customer_history(self, order_id: int) -> dict[str, Any]:
        """The order's customer: tags and chargebacks (disputes initiated as CHARGEBACK) on their orders."""
        order = self.execute("CustomerHistory", {"id": order_gid(order_id)})["order"]
        if order is None:
            raise ShopifyError(f"order {order_id} does not exist")
        customer = order.get("customer") or {}
        orders = ((customer.get("orders") or {}).get("nodes")) or []
        chargebacks = sum(1 for o in orders for d in o.get("disputes") or [] if d["initiatedAs"] == "CHARGEBACK")
        return {"customer_id": customer.get("id"), "tags": customer.get("tags") or [], "chargebacks": chargebacks}

    def fulfillments(self, order_id: int) -> dict[str, Any]:
        return self.execute("OrderFulfillments", {"id": order_gid(order_id)})["order"]

    # ------------------------------------------------------------- mutations

    def add_tags(self, order_id: int, tags: list[str]) -> None:
        self.mutate("TagsAdd", {"id": order_gid(order_id), "tags": tags}, "tagsAdd")

    def remove_tags(self, order_id: int, tags: list[str]) -> None:
        self.mutate("TagsRemove", {"id": order_gid(order_id), "tags": tags}, "tagsRemove")

    def swap_tags(self, order_id: int, remove: list[str], add: list[str]) -> None:
        """tagsRemove then tagsAdd in one request (two aliased mutations: `removed`, `added`)."""
        data = self.execute("TagsSwap", {"id": order_gid(order_id), "remove": remove, "add": add}, expected_cost=20)
        for alias in ("removed", "added"):
            errs = (data.get(alias) or {}).get("userErrors") or []
            if errs:
                raise UserError(alias, errs)

    def update_order(self, order_id: int, **fields: Any) -> dict[str, Any]:
        """orderUpdate: email, phone, note, shippingAddress (MailingAddressInput field names)."""
        return self.mutate("OrderUpdate", {"input": {"id": order_gid(order_id), **fields}}, "orderUpdate")["order"]

    def hold(self, order_id: int, fulfillment_order_id: str, reason: str, handle: str,
             notes: str | None = None) -> dict[str, Any]:
        """Place this SOP's hold; a hold with the same handle already there (an earlier attempt whose
        reply was lost, or a re-run) is returned instead of a second one."""
        try:
            result = self.mutate("FulfillmentOrderHold", {"id": fulfillment_order_id, "hold": {
                "reason": reason, "handle": handle, "reasonNotes": notes}}, "fulfillmentOrderHold")
            return result["fulfillmentHold"]
        except UserError as e:
            if "DUPLICATE_FULFILLMENT_HOLD_HANDLE" not in e.codes:
                raise
            for f in self.fulfillment_orders(order_id):
                for h in f["fulfillmentHolds"]:
                    if f["id"] == fulfillment_order_id and h["handle"] == handle and h["heldByRequestingApp"]:
                        return {"id": h["id"], "handle": h["handle"], "reason": h["reason"]}
            raise

    def release_holds(self, fulfillment_order_id: str, hold_ids: list[str]) -> dict[str, Any]:
        """Release only these holds (never "release all": that would drop other apps' holds)."""
        if not hold_ids:
            raise ValueError("release_holds needs the ids of the holds to release")
        try:
            return self.mutate("FulfillmentOrderReleaseHold", {"id": fulfillment_order_id, "holdIds": hold_ids},
                               "fulfillmentOrderReleaseHold")["fulfillmentOrder"]
        except UserError as e:  # released already (an earlier attempt whose reply was lost): that is done
            if not any("not found" in (x.get("message") or "") for x in e.errors):
                raise
            return {"id": fulfillment_order_id, "released_already": hold_ids}

    def edit_order(self, order_id: int, quantities: dict[str, int] | None = None,
                   add_variants: list[tuple[str, int]] | None = None,
                   shipping: tuple[str, str, dict[str, Any]] | None = None, staff_note: str | None = None) -> dict:
        """One order edit: begin, stage changes (line item gid -> quantity; (variant gid, quantity);
        (shipping line id, title, price)), commit."""
        begin = self.mutate("OrderEditBegin", {"id": order_gid(order_id)}, "orderEditBegin")
        calc = begin["calculatedOrder"]["id"]
        if shipping and shipping[0] is None:  # the order's (first) shipping line
            ship_lines = begin["calculatedOrder"].get("shippingLines") or []
            if not ship_lines:
                raise ShopifyError(f"order {order_id} has no shipping line to change")
            shipping = (ship_lines[0]["id"], shipping[1], shipping[2])
        by_line = {n["id"].rsplit("/", 1)[-1]: n["id"] for n in begin["calculatedOrder"]["lineItems"]["nodes"]}
        for line_gid, qty in (quantities or {}).items():
            calc_line = by_line.get(line_gid.rsplit("/", 1)[-1], line_gid)
            self.mutate("OrderEditSetQuantity", {"id": calc, "lineItemId": calc_line, "quantity": qty,
                                                 "restock": True}, "orderEditSetQuantity")
        for variant_gid, qty in add_variants or []:
            try:
                self.mutate("OrderEditAddVariant", {"id": calc, "variantId": variant_gid, "quantity": qty},
                            "orderEditAddVariant")
            except UserError as e:  # a retry whose first attempt was applied: already staged
                if not (self.retried and any("already on the order" in (x.get("message") or "") for x in e.errors)):
                    raise
        if shipping:
            line_id, title, price = shipping
            self.mutate("OrderEditUpdateShippingLine", {"id": calc, "shippingLineId": line_id, "shippingLine": {
                "title": title, "price": price}}, "orderEditUpdateShippingLine")
        try:
            return self.mutate("OrderEditCommit", {"id": calc, "staffNote": staff_note}, "orderEditCommit")["order"]
        except UserError as e:
            if self.retried and any("already committed" in (x.get("message") or "") for x in e.errors):
                return self.order(order_id) or {}
            raise

    def cancel_order(self, order_id: int, reason: str = "CUSTOMER", restock: bool = True, refund: bool = True,
                     staff_note: str | None = None, wait_seconds: float = 30.0) -> dict[str, Any]:
        """orderCancel runs as a job: start it, then wait until the order shows as cancelled."""
        try:
            result = self.mutate("OrderCancel", {"orderId": order_gid(order_id), "reason": reason, "restock": restock,
                                                 "refundMethod": {"originalPaymentMethodsRefund": refund},
                                                 "staffNote": staff_note}, "orderCancel", "orderCancelUserErrors")
        except UserError as e:
            order = self.order(order_id)
            if order and order.get("cancelledAt") and any("already been cancelled" in (x.get("message") or "")
                                                          for x in e.errors):
                return order  # cancelled already: by an earlier attempt whose reply was lost, or a re-run
            raise
        job = result.get("job") or {}
        deadline = time.monotonic() + wait_seconds
        while job and not job.get("done"):
            if time.monotonic() > deadline:
                raise ShopifyUnavailable(f"orderCancel job {job.get('id')} not done after {wait_seconds:g} s")
            self.sleep(0.05)
            job = self.execute("JobStatus", {"id": job["id"]})["job"] or {"done": True}
        return self.order(order_id) or {}

    def refund(self, order_id: int, amount: str, gateway: str, idempotency_key: str, note: str | None = None,
               currency: str | None = None) -> dict[str, Any]:
        """refundCreate with Shopify's @idempotent key: the same key never refunds twice."""
        if not idempotency_key:
            raise ValueError("a refund needs an idempotency key")
        oid = order_gid(order_id)
        payload = {"orderId": oid, "note": note, "transactions": [
            {"orderId": oid, "amount": amount, "gateway": gateway, "kind": "REFUND"}]}
        if currency:
            payload["currency"] = currency
        return self.mutate("RefundCreate", {"input": payload, "idempotencyKey": idempotency_key},
                           "refundCreate")["refund"]
