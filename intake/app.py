"""Webhook intake: Shopify deliveries in, raw rows persisted, Prefect events out. It also serves
the customers' self-serve pages (intake/corrections.py).

Order of work per delivery, each step refusing early and cheaply:
size (413, before any HMAC work) -> signature (401, nothing stored) -> parse (400, stored as
rejected) -> topic (unknown: stored as ignored) -> inbox row (duplicate webhook id: 200, no
new work) -> order snapshot (an older payload never moves the order back) -> event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from typing import TYPE_CHECKING, Any, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from domain.orders import KNOWN_TOPICS, ORDER_TOPICS, event_name, order_facts, order_id_in
from intake.hmac_sign import verify

if TYPE_CHECKING:
    from intake.corrections import Corrections
    from intake.self_serve import SelfServe
from tasks.db import store

log = logging.getLogger("aftercart.intake")

Emit = Callable[[str, dict[str, str], dict[str, Any]], None]


class _TooLarge(Exception):
    pass


async def _read_capped(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise _TooLarge
        except ValueError:
            pass
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def prefect_emitter() -> Emit:
    """Emit through Prefect's events client (a background worker; never blocks the reply)."""
    from prefect.events import emit_event

    def emit(event: str, resource: dict[str, str], payload: dict[str, Any]) -> None:
        emit_event(event=event, resource=resource, payload=payload)

    return emit


class GroupWriter:
    """One thread stores the intake's deliveries, as many per transaction as are waiting (group
    commit): one commit, one fsync for the group, and no request thread sleeping in SQLite's busy
    handler. A request awaits its own row's outcome on the event loop (no thread per waiting
    request); a failed group fails each of its requests (500: Shopify delivers again)."""

    def __init__(self, database_url: str, max_group: int = 256):
        self.database_url, self.max_group = database_url, max_group
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="intake-writer")
                self._thread.start()

    async def write(self, fields: dict[str, Any], facts: Any = None, payload: Any = None,
                          timeout: float = 30.0) -> dict[str, Any]:
        """Await the row's outcome on the event loop."""
        self._start()
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()

        def settle(how: str, value: Any) -> None:
            if not done.done():
                getattr(done, how)(value)

        self._queue.put(({"fields": fields, "shop": fields["shop"], "facts": facts, "payload": payload},
                         lambda r: loop.call_soon_threadsafe(settle, "set_result", r),
                         lambda e: loop.call_soon_threadsafe(settle, "set_exception", e)))
        return await asyncio.wait_for(done, timeout)

    def _run(self) -> None:
        while True:
            group = [self._queue.get()]
            while len(group) < self.max_group:
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                results = store.write_deliveries(self.database_url, [job for job, _ok, _err in group])
            except Exception as exc:  # nothing of the group is stored; each request answers 500
                log.exception("could not store %s deliveries", len(group))
                for _, _ok, fail in group:
                    fail(exc)
                continue
            for (_, ok, _err), result in zip(group, results):
                ok(result)


class Debouncer:
    """At most one `aftercart.inbox.pending` event per interval (2 s): one drain run serves a burst."""

    def __init__(self, interval: float = 2.0):
        self.interval, self._last, self._lock = interval, float("-inf"), threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                return True
            return False


def create_app(database_url: str, webhook_secret: str, emit: Emit | None, max_body: int = 1024 * 1024,
               pending_interval: float = 2.0, corrections: "Corrections | None" = None,
               self_serve: "SelfServe | None" = None, threepl_secret: str | None = None,
               inbound_secret: str | None = None) -> Starlette:
    debounce = Debouncer(pending_interval)

    writer = GroupWriter(database_url)

    async def _persist(headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        shop = headers.get("x-shopify-shop-domain", "")
        topic = headers.get("x-shopify-topic", "")
        webhook_id = headers.get("x-shopify-webhook-id", "")
        common = dict(
            shop=shop, webhook_id=webhook_id, topic=topic, event_id=headers.get("x-shopify-event-id"),
            api_version=headers.get("x-shopify-api-version"), triggered_at=headers.get("x-shopify-triggered-at"),
            body=body.decode("utf-8", errors="replace"),
        )
        if not shop or not topic or not webhook_id:
            return 400, {"error": "missing X-Shopify-Shop-Domain, X-Shopify-Topic or X-Shopify-Webhook-Id"}
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            await writer.write(dict(common, status="rejected", error=f"malformed JSON: {exc}"))
            return 400, {"error": "malformed JSON body"}
        if topic not in KNOWN_TOPICS:
            res = await writer.write(dict(common, status="ignored", error="unknown topic"))
            return 200, {"status": "ignored", "duplicate": res["duplicate"]}
        facts = order_facts(payload) if topic in ORDER_TOPICS else None
        if topic in ORDER_TOPICS and facts is None:
            await writer.write(dict(common, status="rejected", error="not an order payload (id, updated_at)"))
            return 400, {"error": "order payload needs a numeric id and an ISO 8601 updated_at with offset"}
        order_id = facts.id if facts else order_id_in(payload)
        res = await writer.write(dict(common, status="accepted", order_id=order_id), facts, payload)
        if res["duplicate"]:
            return 200, {"status": "duplicate", "id": res["id"]}
        if res.get("verdict", "apply") != "apply":
            return 200, {"status": res["verdict"], "id": res["id"]}
        if emit is not None:
            resource = {"prefect.resource.id": f"shopify.order.{order_id}" if order_id else f"shopify.shop.{shop}",
                        "shopify.shop": shop, "shopify.topic": topic}
            try:
                emit(event_name(topic), resource, {"inbox_id": res["id"], "webhook_id": webhook_id})
                if debounce.due():
                    emit("aftercart.inbox.pending", {"prefect.resource.id": f"aftercart.inbox.{shop}"}, {})
            except Exception:  # the row is stored; the drain schedule and reconciliation pick it up
                log.exception("could not emit the event for delivery %s", res["id"])
        return 200, {"status": "accepted", "id": res["id"]}

    async def webhook(request: Request) -> JSONResponse:
        try:
            body = await _read_capped(request, max_body)
        except _TooLarge:
            return JSONResponse({"error": f"body over {max_body} bytes"}, status_code=413)
        if not verify(webhook_secret, body, request.headers.get("x-shopify-hmac-sha256")):
            return JSONResponse({"error": "missing or invalid X-Shopify-Hmac-Sha256"}, status_code=401)
        status, answer = await _persist(dict(request.headers), body)
        return JSONResponse(answer, status_code=status)

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def read_or_none(request: Request) -> bytes | None:
        try:
            return await _read_capped(request, max_body)
        except _TooLarge:
            return None

    def announce(shop: str, _inbox_id: int | None) -> None:
        if emit is not None and debounce.due():
            try:
                emit("aftercart.inbox.pending", {"prefect.resource.id": f"aftercart.inbox.{shop}"}, {})
            except Exception:  # the row is stored; the drain schedule picks it up
                log.exception("could not announce pending work")

    extra: list = []
    if threepl_secret is not None and inbound_secret is not None:
        from intake.inbound import routes as inbound_routes

        extra += inbound_routes(database_url, threepl_secret, inbound_secret, read_or_none, announce)
    if corrections is not None:
        from intake.corrections import routes

        extra += routes(database_url, corrections)
    if self_serve is not None:
        from intake.self_serve import routes as self_serve_routes

        extra += self_serve_routes(database_url, self_serve)
    return Starlette(routes=[
        Route("/webhooks/shopify", webhook, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        *extra,
    ])
