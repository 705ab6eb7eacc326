"""The sandbox 3PL: orders received as versions, statuses received -> picking -> packed -> shipped,
holds and flags of the signal vocabulary, cancellation requests, pushes back to aftercart.

When the 3PL ships, it creates the Shopify fulfillment with tracking (as a real 3PL does through
Shopify's fulfillment API), which fires `fulfillments/create`.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from intake.hmac_sign import sign
from sandbox.clock import iso
from sandbox.operations import OpError, Operations

log = logging.getLogger("aftercart.sandbox.3pl")
FLOW = ("received", "picking", "packed", "label_created", "shipped")  # label_created: the label is bought
_tracking = itertools.count(100000)


class ThreePLError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


@dataclass
class WarehouseOrder:
    order_id: int
    name: str
    version: int
    status: str
    lines: list[dict[str, Any]]
    address: dict[str, Any]
    flags: list[str] = field(default_factory=list)
    tracking_number: str | None = None
    carrier: str = "USPS"
    updated_at: str = ""
    status_since: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)


class ThreePL:
    def __init__(self, ops: Operations, push_url: str | None = None, secret: str = "sandbox-3pl-secret",
                 auto_minutes: dict[str, float] | None = None):
        self.ops, self.world = ops, ops.world
        self.orders: dict[int, WarehouseOrder] = {}
        self.push_url, self.secret = push_url, secret
        self.auto_minutes = auto_minutes or {}  # e.g. {"received": 15, "picking": 20, "packed": 30}
        self.pushes: list[dict[str, Any]] = []
        self._http = httpx.Client(timeout=5.0) if push_url else None
        self._queue: queue.Queue = queue.Queue()
        self._push_lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._unsent = 0
        self.dropped_pushes = 0

    def _now(self) -> str:
        return iso(self.world.clock.now())

    def _get(self, order_id: int) -> WarehouseOrder:
        w = self.orders.get(order_id)
        if w is None:
            raise ThreePLError(404, f"order {order_id} is not at the warehouse")
        return w

    def _log(self, w: WarehouseOrder, what: str, **detail) -> None:
        w.updated_at = self._now()
        # one id per event: the push carries it and the history keeps it, so a receiver that
        # missed a push and polls later recognises what it already has
        w.history.append({"at": w.updated_at, "what": what, "event_id": f"{w.order_id}:{len(w.history) + 1}",
                          "status": w.status, "version": w.version, **detail})
        self._push(w, what)

    def _push(self, w: WarehouseOrder, what: str) -> None:
        """Queue a signed status push; one worker sends them in order, retrying failures (a 3PL's
        webhooks retry too), so a receiver that is briefly down or busy loses nothing."""
        body = {"event": what, "event_id": w.history[-1]["event_id"], "order": self.view(w)}
        self.pushes.append(body)
        if self._http and self.push_url:
            with self._push_lock:
                self._unsent += 1
                if self._worker is None:
                    self._worker = threading.Thread(target=self._send_pushes, daemon=True, name="3pl-push")
                    self._worker.start()
            self._queue.put(json.dumps(body).encode())

    def _send_pushes(self) -> None:
        while True:
            raw = self._queue.get()
            if raw is None:
                return
            for attempt, pause in enumerate((0.2, 0.5, 1, 2, 4, 8, None)):
                try:
                    r = self._http.post(self.push_url, content=raw, headers={
                        "Content-Type": "application/json", "X-3PL-Signature": sign(self.secret, raw)})
                    if r.status_code < 500:
                        break
                    why = f"HTTP {r.status_code}"
                except httpx.HTTPError as exc:
                    why = str(exc)
                if pause is None:
                    log.warning("3PL push to %s dropped after %s attempts: %s", self.push_url, attempt + 1, why)
                    self.dropped_pushes += 1
                    break
                time.sleep(pause)
            with self._push_lock:
                self._unsent -= 1

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every queued push was sent (or dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._push_lock:
                if self._unsent == 0:
                    return True
            time.sleep(0.02)
        return False

    def view(self, w: WarehouseOrder) -> dict[str, Any]:
        out = asdict(w)
        out["history"] = list(w.history[-20:])
        return out

    # ------------------------------------------------------------- API

    def receive(self, body: dict[str, Any]) -> WarehouseOrder:
        """Create the order, or take a new version of it while it can still change."""
        try:
            order_id = int(body["order_id"])
            lines = [{"sku": str(li["sku"]), "quantity": int(li["quantity"])} for li in body["lines"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ThreePLError(400, f"an order needs order_id and lines of sku and quantity ({exc})") from None
        with self.world.lock:
            o = self.ops.order(order_id)
            existing = self.orders.get(order_id)
            if existing is not None:
                if existing.status in ("packed", "label_created", "shipped", "cancelled"):
                    raise ThreePLError(409, f"order {o.name} is {existing.status}: a new version is too late")
                existing.version += 1
                existing.lines, existing.address = lines, dict(body.get("address") or existing.address)
                existing.flags = sorted(set(body.get("flags") or existing.flags))
                if existing.status == "picking":  # a changed order goes back to the start of the pick
                    existing.status = "received"
                    existing.status_since = self._now()
                self._log(existing, "new_version", version=existing.version)
                return existing
            w = WarehouseOrder(order_id=order_id, name=o.name, version=1, status="received", lines=lines,
                               address=dict(body.get("address") or o.shipping_address),
                               flags=sorted(set(body.get("flags") or [])), status_since=self._now())
            self.orders[order_id] = w
            for fo in o.fulfillment_orders:
                if fo.status == "OPEN":
                    fo.status, fo.request_status = "IN_PROGRESS", "ACCEPTED"
            self.world.touch(o)
            self._log(w, "received")
            return w

    def set_flag(self, order_id: int, flag: str, on: bool) -> WarehouseOrder:
        with self.world.lock:
            w = self._get(order_id)
            flags = set(w.flags)
            (flags.add if on else flags.discard)(flag)
            if sorted(flags) != w.flags:
                w.flags = sorted(flags)
                self._log(w, "flag_set" if on else "flag_cleared", flag=flag)
            return w

    def cancel_request(self, order_id: int) -> dict[str, Any]:
        with self.world.lock:
            w = self._get(order_id)
            if w.status in ("shipped",):
                self._log(w, "cancel_refused", reason="already shipped")
                return {"accepted": False, "status": w.status, "reason": "already shipped"}
            if w.status == "cancelled":
                return {"accepted": True, "status": w.status, "reason": "already cancelled"}
            before = w.status
            w.status = "cancelled"
            self._log(w, "cancelled", pulled_back_from=before)
            return {"accepted": True, "status": "cancelled", "pulled_back_from": before}

    def advance(self, order_id: int, status: str) -> WarehouseOrder:
        if status not in FLOW:
            raise ThreePLError(400, f"unknown status {status!r}; the flow is {' -> '.join(FLOW)}")
        with self.world.lock:
            w = self._get(order_id)
            if w.status == "cancelled":
                raise ThreePLError(409, f"order {w.name} was cancelled at the warehouse")
            if FLOW.index(status) <= FLOW.index(w.status) if w.status in FLOW else True:
                raise ThreePLError(409, f"order {w.name} is {w.status}; it cannot go to {status}")
            if any(f.startswith("ac:hold:") for f in w.flags):
                raise ThreePLError(409, f"order {w.name} is held at the warehouse ({', '.join(w.flags)})")
            w.status, w.status_since = status, self._now()
            if status == "shipped":
                w.tracking_number = f"9400{next(_tracking)}"
                try:
                    self.ops.fulfill(self.ops.order(order_id), w.carrier, w.tracking_number)
                except OpError as exc:
                    raise ThreePLError(409, f"Shopify refused the fulfillment: {exc.message}") from None
            self._log(w, status)
            return w

    def tick(self) -> int:
        """Advance every order whose time in its status has passed (when auto-advance is on)."""
        if not self.auto_minutes:
            return 0
        now = self.world.clock.now()
        moved = 0
        for w in list(self.orders.values()):
            minutes = self.auto_minutes.get(w.status)
            if minutes is None or w.status not in FLOW[:-1] or any(f.startswith("ac:hold:") for f in w.flags):
                continue
            since = datetime.fromisoformat(w.status_since.replace("Z", "+00:00"))
            if now - since >= timedelta(minutes=minutes):
                nxt = FLOW[FLOW.index(w.status) + 1]
                if nxt == "label_created" and nxt not in self.auto_minutes:  # labels bought as it ships
                    nxt = "shipped"
                self.advance(w.order_id, nxt)
                moved += 1
        return moved

    def updated_since(self, since: str | None) -> list[WarehouseOrder]:
        return [w for w in self.orders.values() if since is None or w.updated_at > since]

    def close(self) -> None:
        if self._worker is not None:
            self.wait_idle(10)
            self._queue.put(None)
            self._worker.join(5)
        if self._http:
            self._http.close()


class AutoAdvance:
    """Real-time driver of ThreePL.tick (a scenario's simulated clock calls tick itself)."""

    def __init__(self, threepl: ThreePL, every: float = 1.0):
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(threepl, every), daemon=True, name="3pl-auto")
        self._t.start()

    def _run(self, threepl: ThreePL, every: float) -> None:
        while not self._stop.wait(every):
            try:
                threepl.tick()
            except Exception:
                log.exception("3PL auto-advance failed")

    def stop(self) -> None:
        self._stop.set()
