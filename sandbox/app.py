"""The sandbox service: Shopify-shaped store over real HTTP on loopback.

Routes
  POST /admin/api/<version>/graphql.json   Admin GraphQL (needs X-Shopify-Access-Token)
  POST /sandbox/orders                     place one order (scenario-format JSON)
  POST /sandbox/generate                   place N generated orders ({"count": N})
  GET  /sandbox/orders.json                every order with stage, holds and tags
  GET  /                                   the read-only sandbox page
  GET  /health
"""

from __future__ import annotations

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
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from sandbox.catalogue import generate_order_input
from sandbox.clock import Clock, iso
from sandbox.graphql_api import AdminApi
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


class Sandbox:
    """One simulated store with its API, webhooks and order traffic."""

    def __init__(self, config: SandboxConfig, clock: Clock | None = None):
        self.config = config
        self.world = World(clock=clock, seed=config.seed, shop=config.shop)
        self.api = AdminApi(self.world, config.plan)
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
        self.sender.close()


def order_summary(o: OrderState) -> dict[str, Any]:
    return {
        "id": o.id, "name": o.name, "created_at": iso(o.created_at), "updated_at": iso(o.updated_at),
        "email": o.email, "customer_locale": o.customer_locale, "tags": o.tags,
        "stage": "cancelled" if o.cancelled_at else o.fulfillment_status.lower(),
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
        answer = await run_in_threadpool(sandbox.api.handle, body)
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
            data = [order_summary(o) for o in sandbox.world.orders.values()]
        return JSONResponse({"orders": data, "webhooks": vars(sandbox.sender.stats) | {"log": []}})

    async def page(_: Request) -> HTMLResponse:
        with sandbox.world.lock:
            rows = [order_summary(o) for o in sorted(sandbox.world.orders.values(), key=lambda o: -o.id)[:200]]
        body = "".join(
            f"<tr><td>{html.escape(r['name'])}</td><td>{html.escape(r['created_at'])}</td>"
            f"<td>{html.escape(r['stage'])}</td><td>{html.escape(', '.join(r['holds']))}</td>"
            f"<td>{html.escape(', '.join(r['tags']))}</td><td>{html.escape(r['email'] or '')}</td>"
            f"<td>{html.escape(r['shipping_address'].get('country_code') or '')}</td>"
            f"<td>{html.escape(r['total'])} {html.escape(r['currency'])}</td></tr>"
            for r in rows)
        s = sandbox.sender.stats
        return HTMLResponse(
            "<!doctype html><html><head><meta charset='utf-8'><title>aftercart sandbox</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px}th{background:#f4f4f4}</style></head><body>"
            f"<h1>aftercart sandbox: {html.escape(cfg.shop)}</h1>"
            f"<p>{len(sandbox.world.orders)} orders · webhooks delivered {s.delivered}, failed attempts "
            f"{s.failed_attempts}, pending {sandbox.sender.pending()}</p>"
            "<table><thead><tr><th>order</th><th>placed</th><th>stage</th><th>holds</th><th>tags</th>"
            "<th>customer</th><th>country</th><th>total</th></tr></thead><tbody>"
            f"{body}</tbody></table></body></html>")

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok", "orders": len(sandbox.world.orders)})

    return Starlette(routes=[
        Route("/admin/api/{version}/graphql.json", graphql, methods=["POST"]),
        Route("/sandbox/orders", place, methods=["POST"]),
        Route("/sandbox/generate", generate, methods=["POST"]),
        Route("/sandbox/orders.json", orders, methods=["GET"]),
        Route("/", page, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
    ], lifespan=_lifespan(sandbox))
