"""The sandbox service: Shopify-shaped store over real HTTP on loopback.

Routes
  POST /admin/api/<version>/graphql.json   Admin GraphQL (needs X-Shopify-Access-Token)
  POST /sandbox/orders                     place one order (scenario-format JSON)
  POST /sandbox/generate                   place N generated orders ({"count": N})
  GET  /sandbox/orders.json                every order with stage, holds and tags
  POST /sandbox/faults                     set fault injection rules (see sandbox/faults.py)
  POST /3pl/orders                         3PL: receive an order or a new version of it
  GET  /3pl/orders[/<id>]                  3PL: orders (?updated_since=ISO) or one order
  POST /3pl/orders/<id>/hold|release       3PL: set or clear a signal flag ({"flag": ...})
  POST /3pl/orders/<id>/cancel-request     3PL: ask to pull an order back
  POST /3pl/orders/<id>/advance            3PL: move it on ({"status": picking|packed|shipped})
  POST /verifier/v1/verify                 online address verifier: {"addresses": [...]} -> {"results": [...]}
  POST /carrier/events                     carrier: {"tracking_number", "status"}
  POST /sandbox/orders/<id>/capture         the pending payment is captured (payment_confirmed)
  POST /sandbox/orders/<id>/return          the customer asks to return ({"status": "RETURN_REQUESTED"})
  POST /sandbox/orders/<id>/open-scheduled  preorder stock arrived: scheduled fulfillment orders open
  GET  /mailbox/messages                   every message the SMTP mailbox received (?to=)
  POST /helpdesk/tickets                   helpdesk: a customer writes in ({channel, customer, text, order?})
  GET  /helpdesk/tickets                   helpdesk: every ticket (?order= name)
  POST /helpdesk/tickets/<id>/tags         helpdesk: signal tags ({"add": [...], "remove": [...]}; "tags" adds)
  GET  /                                   the read-only sandbox page
  GET  /health
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import random
import threading
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from sandbox import verifier as address_verifier
from sandbox.catalogue import generate_order_input
from sandbox.clock import Clock, iso
from sandbox.faults import Faults
from sandbox.graphql_api import AdminApi
from sandbox.helpdesk import helpdesk_routes
from sandbox.mailbox import Mailbox, start_smtp
from sandbox.operations import OpError, Operations
from sandbox.threepl import AutoAdvance, ThreePL, ThreePLError
from sandbox.schema import API_VERSION
from sandbox.webhooks import TOPICS, WebhookSender
from sandbox.world import OrderState, World, rest_payload

log = logging.getLogger("aftercart.sandbox")


@dataclass
class SandboxConfig:
    shop: str = "sandbox.myshopify.com"
    access_token: str = "sandbox-token"
    webhook_secret: str = "sandbox-webhook-secret"
    webhook_address: str | None = None  # the intake's URL; None: no subscriptions
    plan: str = "standard"
    throttle_status: int = 200  # Shopify answers THROTTLED with 200; 429 is configurable
    retry_base: float = 5.0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    seed: int = 7
    smtp_port: int | None = None  # None: no SMTP server
    threepl_push_url: str | None = None  # aftercart's /webhooks/3pl: the 3PL's signed status pushes
    threepl_secret: str = "sandbox-3pl-secret"
    # mail the customer sends to the store's address goes on to aftercart's /inbound/email (signed)
    store_email: str = "orders@sandbox.test"
    inbound_email_url: str | None = None
    inbound_email_secret: str = "sandbox-inbound-secret"
    threepl_auto_minutes: dict | None = None  # e.g. {"received": 10, "picking": 15, "packed": 20}
    # the customer's self-serve links per order (aftercart's signed pages), shown on the sandbox page
    self_serve_links: Any = None  # Callable[[int], dict[str, str]] | None


class Sandbox:
    """One simulated store with its API, webhooks and order traffic."""

    def __init__(self, config: SandboxConfig, clock: Clock | None = None):
        self.config = config
        self.world = World(clock=clock, seed=config.seed, shop=config.shop)
        self.ops = Operations(self.world)
        self.api = AdminApi(self.world, config.plan, self.ops)
        self.faults = Faults()
        self.threepl = ThreePL(self.ops, config.threepl_push_url, secret=config.threepl_secret,
                               auto_minutes=config.threepl_auto_minutes)
        self._auto = AutoAdvance(self.threepl) if config.threepl_auto_minutes and not self.world.clock.simulated else None
        self.mailbox = Mailbox(forward_for=config.store_email, forward_url=config.inbound_email_url,
                               forward_secret=config.inbound_email_secret)
        self.tickets: list[dict[str, Any]] = []
        self._smtp = start_smtp(self.mailbox, port=config.smtp_port) if config.smtp_port else None
        self.sender = WebhookSender(config.shop, config.webhook_secret, API_VERSION, retry_base=config.retry_base,
                                    duplicate_rate=config.duplicate_rate, reorder_rate=config.reorder_rate,
                                    seed=config.seed)
        if config.webhook_address:
            for t in TOPICS:
                self.sender.subscribe(t, config.webhook_address)
        self.world.listeners.append(self._on_change)
        self._rnd = random.Random(config.seed)
        self._traffic_stop = threading.Event()
        self._traffic: threading.Thread | None = None

    def _on_change(self, topic: str, order: OrderState, subject=None) -> None:
        self.sender.publish(topic, rest_payload(topic, order, subject, self.world), self.world.clock.now())

    def generate(self, count: int) -> list[OrderState]:
        return [self.world.create_order(generate_order_input(self._rnd, self.world.products)) for _ in range(count)]

    def start_traffic(self, orders_per_minute: float) -> None:
        if orders_per_minute <= 0:
            return
        gap = 60.0 / orders_per_minute

        def run():
            while not self._traffic_stop.wait(gap):
                try:
                    self.generate(1)
                except Exception:  # keep the demo traffic going
                    log.exception("order generator failed")

        self._traffic = threading.Thread(target=run, name="sandbox-traffic", daemon=True)
        self._traffic.start()

    def close(self) -> None:
        self._traffic_stop.set()
        if self._auto:
            self._auto.stop()
        if self._smtp:
            self._smtp.stop()
        self.threepl.close()
        self.sender.close()


def _operation_of(body: Any) -> str:
    """The fault rule key: operationName, else the first root field of the document."""
    if isinstance(body, dict) and body.get("operationName"):
        return str(body["operationName"])
    import re

    m = re.search(r"\{\s*([A-Za-z_]\w*)", str((body or {}).get("query") or "") if isinstance(body, dict) else "")
    return m.group(1) if m else "*"


_CARRIER_STAGE = {"confirmed": "shipped", "in_transit": "in_transit", "out_for_delivery": "out_for_delivery",
                  "attempted_delivery": "out_for_delivery", "delivered": "delivered", "failure": "failed_delivery",
                  "delayed": "in_transit"}
_WAREHOUSE_STAGE = {"received": "released", "picking": "picking", "packed": "packed",
                    "label_created": "label_created", "shipped": "shipped"}


def stage_of(sandbox: "Sandbox", o: OrderState) -> str:
    """The stage as its owner tells it: Shopify before release, the 3PL, then the carrier."""
    if o.cancelled_at:
        return "cancelled"
    fulfillments = sandbox.world.fulfillments.get(o.id)
    if fulfillments:
        return _CARRIER_STAGE.get(fulfillments[-1].shipment_status, "shipped")
    w = sandbox.threepl.orders.get(o.id)
    if w is not None:
        return _WAREHOUSE_STAGE.get(w.status, w.status)
    return "unfulfilled"


def order_summary(sandbox: "Sandbox", o: OrderState) -> dict[str, Any]:
    w = sandbox.threepl.orders.get(o.id)
    return {
        "id": o.id, "name": o.name, "created_at": iso(o.created_at), "updated_at": iso(o.updated_at),
        "email": o.email, "customer_locale": o.customer_locale, "tags": o.tags,
        "stage": stage_of(sandbox, o), "warehouse_flags": w.flags if w else [],
        "messages": [m.headers.get("X-Aftercart-Template", m.subject)  # what the customer received
                     for m in sandbox.mailbox.find(to=o.email, header=("X-Aftercart-Order", o.name))] if o.email else [],
        "tickets": [f"{t['id']}:{t['channel']}" + (f" [{', '.join(t['tags'])}]" if t["tags"] else "")
                    for t in sandbox.tickets if t["order"] == o.name],
        "holds": [h.handle for fo in o.fulfillment_orders for h in fo.holds],
        "shipping_address": o.shipping_address, "order_type": o.order_type, "risk": o.risk.lower(),
        "line_items": [{"sku": li.sku, "quantity": li.quantity} for li in o.line_items],
        "total": f"{o.total:.2f}", "currency": o.currency,
    }


def _lifespan(sandbox: Sandbox):
    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        sandbox.close()

    return lifespan


def create_app(sandbox: Sandbox) -> Starlette:
    cfg = sandbox.config

    async def graphql(request: Request) -> JSONResponse:
        if request.path_params["version"] != API_VERSION:
            return JSONResponse({"errors": f"API version {request.path_params['version']} is not supported "
                                 f"by the sandbox (it serves {API_VERSION})"}, status_code=404)
        if request.headers.get("x-shopify-access-token") != cfg.access_token:
            return JSONResponse({"errors": "[API] Invalid API key or access token (unrecognized login or wrong "
                                 "password)"}, status_code=401)
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"errors": "Invalid JSON in request body"}, status_code=400)
        faults = sandbox.faults.draw(_operation_of(body))
        if "slow" in faults:
            await asyncio.sleep(sandbox.faults.slow_seconds)
        if "throttled" in faults:
            answer = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                      "extensions": {"cost": {"requestedQueryCost": 10, "actualQueryCost": None,
                                              "throttleStatus": sandbox.api.bucket.status()}}}
            return JSONResponse(answer, status_code=cfg.throttle_status)
        if "http429" in faults:
            return JSONResponse({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                                 "resume uninterrupted service."}, status_code=429,
                                headers={"Retry-After": f"{sandbox.faults.retry_after:g}"})
        if "http5xx" in faults:
            return JSONResponse({"errors": "Service Unavailable"}, status_code=503)
        answer = await run_in_threadpool(sandbox.api.handle, body)
        if "lost_reply" in faults:  # applied, but the client never hears so
            return Response(b"", status_code=502)
        throttled = any((e.get("extensions") or {}).get("code") == "THROTTLED" for e in answer.get("errors") or [])
        return JSONResponse(answer, status_code=cfg.throttle_status if throttled else 200)

    async def place(request: Request) -> JSONResponse:
        try:
            data = json.loads(await request.body())
            if not isinstance(data, dict):
                raise ValueError("an order is a JSON object")
            o = await run_in_threadpool(sandbox.world.create_order, data)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"bad order: {exc}"}, status_code=400)
        return JSONResponse({"id": o.id, "name": o.name, "admin_graphql_api_id": f"gid://shopify/Order/{o.id}"})

    async def generate(request: Request) -> JSONResponse:
        try:
            count = int((json.loads(await request.body() or b"{}")).get("count", 1))
        except (ValueError, AttributeError):
            return JSONResponse({"error": "body must be {\"count\": N}"}, status_code=400)
        if not 1 <= count <= 100_000:
            return JSONResponse({"error": "count must be between 1 and 100000"}, status_code=400)
        orders = await run_in_threadpool(sandbox.generate, count)
        return JSONResponse({"created": len(orders), "names": [o.name for o in orders[:20]]})

    async def orders(_: Request) -> JSONResponse:
        with sandbox.world.lock:
            data = [order_summary(sandbox, o) for o in sandbox.world.orders.values()]
        return JSONResponse({"orders": data, "webhooks": vars(sandbox.sender.stats) | {"log": []}})

    def links(order_id: int) -> str:
        if cfg.self_serve_links is None:
            return ""
        return " ".join(f"<a href='{html.escape(url, quote=True)}' target='_blank'>{html.escape(label)}</a>"
                        for label, url in cfg.self_serve_links(order_id).items())

    async def page(_: Request) -> HTMLResponse:
        with sandbox.world.lock:
            rows = [order_summary(sandbox, o) for o in sorted(sandbox.world.orders.values(), key=lambda o: -o.id)[:200]]
        body = "".join(
            f"<tr><td>{html.escape(r['name'])}</td><td>{html.escape(r['created_at'][:19].replace('T', ' '))}</td>"
            f"<td>{html.escape(r['stage'])}</td><td>{html.escape(', '.join(r['holds']))}</td>"
            f"<td>{html.escape(', '.join(r['tags']))}</td><td>{html.escape(', '.join(r['messages']))}</td>"
            f"<td>{html.escape(', '.join(r['tickets']))}</td>"
            f"<td>{html.escape(r['email'] or '')}</td>"
            f"<td>{html.escape(r['shipping_address'].get('country_code') or '')}</td>"
            f"<td>{html.escape(r['total'])} {html.escape(r['currency'])}</td>"
            f"<td>{links(r['id'])}</td></tr>"
            for r in rows)
        s = sandbox.sender.stats
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><meta http-equiv='refresh' content='5'>"
            "<title>aftercart sandbox</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px}th{background:#f4f4f4}</style></head><body>"
            f"<h1>aftercart sandbox: {html.escape(cfg.shop)}</h1>"
            f"<p>{len(sandbox.world.orders)} orders · webhooks delivered {s.delivered}, failed attempts "
            f"{s.failed_attempts}, pending {sandbox.sender.pending()} · mailbox {len(sandbox.mailbox.messages)} "
            f"messages · helpdesk {len(sandbox.tickets)} tickets</p>"
            "<table><thead><tr><th>order</th><th>placed</th><th>stage</th><th>holds</th><th>tags</th>"
            "<th>messages</th><th>tickets</th><th>customer</th><th>country</th><th>total</th><th>customer self-serve</th>"
            "</tr></thead><tbody>"
            f"{body}</tbody></table></body></html>")

    async def set_faults(request: Request) -> JSONResponse:
        try:
            sandbox.faults = Faults.from_json(json.loads(await request.body() or b"{}"))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse({"rules": {k: vars(v) for k, v in sandbox.faults.rules.items()}})

    async def get_faults(_: Request) -> JSONResponse:
        return JSONResponse({"injected": sandbox.faults.injected,
                             "rules": {k: vars(v) for k, v in sandbox.faults.rules.items()}})

    def threepl_call(fn):
        async def endpoint(request: Request) -> JSONResponse:
            try:
                raw = await request.body()
                body = json.loads(raw) if raw else {}
                if not isinstance(body, dict):
                    raise ValueError("the body is a JSON object")
                result = await run_in_threadpool(fn, request, body)
            except ThreePLError as exc:
                return JSONResponse({"error": exc.message}, status_code=exc.status)
            except OpError as exc:
                return JSONResponse({"error": exc.message}, status_code=404 if exc.code == "NOT_FOUND" else 409)
            except ValueError as exc:
                return JSONResponse({"error": f"bad request: {exc}"}, status_code=400)
            return JSONResponse(result)
        return endpoint

    def _oid(request: Request) -> int:
        return int(request.path_params["order_id"])

    tpl = sandbox.threepl
    routes_3pl = [
        Route("/3pl/orders", threepl_call(lambda r, b: tpl.view(tpl.receive(b))), methods=["POST"]),
        Route("/3pl/orders", threepl_call(lambda r, b: {"orders": [tpl.view(w) for w in tpl.updated_since(
            r.query_params.get("updated_since"))]}), methods=["GET"]),
        Route("/3pl/orders/{order_id:int}", threepl_call(lambda r, b: tpl.view(tpl._get(_oid(r)))), methods=["GET"]),
        Route("/3pl/orders/{order_id:int}/hold", threepl_call(
            lambda r, b: tpl.view(tpl.set_flag(_oid(r), str(b.get("flag") or ""), True))), methods=["POST"]),
        Route("/3pl/orders/{order_id:int}/release", threepl_call(
            lambda r, b: tpl.view(tpl.set_flag(_oid(r), str(b.get("flag") or ""), False))), methods=["POST"]),
        Route("/3pl/orders/{order_id:int}/cancel-request", threepl_call(lambda r, b: tpl.cancel_request(_oid(r))),
              methods=["POST"]),
        Route("/3pl/orders/{order_id:int}/advance", threepl_call(
            lambda r, b: tpl.view(tpl.advance(_oid(r), str(b.get("status") or "")))), methods=["POST"]),
    ]

    def order_op(op):
        """A store-side change to one order (what a merchant or customer does in Shopify)."""
        def call(request: Request, body: dict) -> dict:
            with sandbox.world.lock:
                o = sandbox.ops.order(_oid(request))
                op(o, body)
                return order_summary(sandbox, o)
        return threepl_call(call)

    def carrier_event(request: Request, body: dict) -> dict:
        with sandbox.world.lock:
            o, f = sandbox.ops.tracking_event(str(body.get("tracking_number") or ""), str(body.get("status") or ""))
        return {"order": o.name, "tracking_number": f.tracking_number, "status": f.shipment_status}

    async def mailbox(request: Request) -> JSONResponse:
        msgs = sandbox.mailbox.find(to=request.query_params.get("to"))
        return JSONResponse({"messages": [m.as_dict() for m in msgs]})

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "orders": len(sandbox.world.orders)})

    return Starlette(routes=[
        Route("/admin/api/{version}/graphql.json", graphql, methods=["POST"]),
        Route("/sandbox/orders", place, methods=["POST"]),
        Route("/sandbox/generate", generate, methods=["POST"]),
        Route("/sandbox/orders.json", orders, methods=["GET"]),
        Route("/sandbox/faults", set_faults, methods=["POST"]),
        Route("/sandbox/faults", get_faults, methods=["GET"]),
        *routes_3pl,
        Route("/carrier/events", threepl_call(carrier_event), methods=["POST"]),
        Route("/sandbox/orders/{order_id:int}/capture", order_op(lambda o, b: sandbox.ops.capture(o)), methods=["POST"]),
        Route("/sandbox/orders/{order_id:int}/return", order_op(
            lambda o, b: sandbox.ops.request_return(o, str(b.get("status") or "RETURN_REQUESTED"))), methods=["POST"]),
        Route("/sandbox/orders/{order_id:int}/open-scheduled", order_op(lambda o, b: sandbox.ops.open_scheduled(o)),
              methods=["POST"]),
        Route("/mailbox/messages", mailbox, methods=["GET"]),
        Route("/verifier/v1/verify", threepl_call(lambda r, b: address_verifier.verify(b)), methods=["POST"]),
        *helpdesk_routes(sandbox, threepl_call),
        Route("/", page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ], lifespan=_lifespan(sandbox))
