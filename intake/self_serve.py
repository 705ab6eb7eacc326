"""The customer's self-serve pages, served by the intake service, in the customer's language.

- `/cancel/<order id>?t=<signature>` (SOP 3): a one-field form; POST starts a
  `cancellation-review` run with channel `self_serve` and the reason typed (a second request for
  the same order joins the open one, so pressing twice does nothing more).
- `/edit/<order id>?t=<signature>` (SOP 2): contact details, the unit line, quantities; each POST
  starts an `order-edit` run with channel `self_serve`, which checks and decides it.
Links are signed per order and page; a wrong signature is a 404.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from domain.messages import pick_language
from domain.policy import Policy
from intake.links import link_token, token_ok
from intake.pages import get_page, post_form
from tasks.db import store

log = logging.getLogger("aftercart.intake.self_serve")
MAX_FORM_BYTES = 4 * 1024


def cancel_link(base_url: str, secret: str, order_id: int) -> str:
    return f"{base_url.rstrip('/')}/cancel/{order_id}?t={link_token(secret, f'cancel:{order_id}')}"


def edit_link(base_url: str, secret: str, order_id: int) -> str:
    return f"{base_url.rstrip('/')}/edit/{order_id}?t={link_token(secret, f'edit:{order_id}')}"


def edit_request_from_form(form: dict[str, str]) -> dict:
    """The edit request a self-serve form sends (checked by the flow's decision, not here)."""
    kind = form.get("kind", "")
    if kind == "contact_change":
        return {"kind": kind, **{k: form[k].strip() for k in ("email", "phone") if form.get(k, "").strip()}}
    if kind == "address_change":
        return {"kind": kind, "address": {"address2": form.get("address2", "").strip()}}
    if kind == "quantity_change":
        q = form.get("quantity", "").strip()
        return {"kind": kind, "line": form.get("line", ""), "quantity": int(q) if q.lstrip("-").isdigit() else q}
    return {"kind": kind}


@dataclass(frozen=True)
class SelfServe:
    link_secret: str
    policy: Callable[[], Policy]
    start_cancellation: Callable[[int, str, str], None]  # (order id, order name, reason)
    start_edit: Callable[[int, str, dict], None] | None = None  # (order id, order name, request)


def routes(database_url: str, cfg: SelfServe) -> list[Route]:
    from config.messages import render_page
    from tasks.db import comms_store

    def find(request: Request, purpose: str = "cancel"):
        try:
            oid = int(request.path_params["order_id"])
        except ValueError:
            return None
        if not token_ok(cfg.link_secret, f"{purpose}:{oid}", request.query_params.get("t")):
            return None
        return store.get_order(database_url, oid)

    def page(name: str, order, status: int = 200, **ctx) -> HTMLResponse:
        lang = pick_language(cfg.policy(), order.customer_locale, order.country_code).language
        return HTMLResponse(render_page(name, lang, {"order_name": order.name, **ctx}), status_code=status)

    def show(request: Request) -> HTMLResponse:
        order = find(request)
        if order is None:
            return HTMLResponse("Not found", status_code=404)
        comms_store.record_link_open(database_url, "cancel", order.id)
        return page("cancel_form", order)

    def show_edit(request: Request) -> HTMLResponse:
        order = find(request, "edit")
        if order is None or cfg.start_edit is None:
            return HTMLResponse("Not found", status_code=404)
        comms_store.record_link_open(database_url, "edit", order.id)
        snap = order.snapshot or {}
        return page("edit_form", order, email=snap.get("email"), phone=snap.get("phone"),
                    address2=(snap.get("shipping_address") or {}).get("address2"),
                    lines=[{"sku": li.get("sku"), "title": li.get("title"), "quantity": li.get("quantity")}
                           for li in snap.get("line_items") or [] if li.get("sku")])

    def submit_edit(request: Request, form: dict[str, str]) -> HTMLResponse:
        order = find(request, "edit")
        if order is None or cfg.start_edit is None:
            return HTMLResponse("Not found", status_code=404)
        try:
            cfg.start_edit(order.id, order.name, edit_request_from_form(form))
        except Exception:
            log.exception("could not start the order edit for %s", order.name)
            return HTMLResponse("We could not take your request right now; please reply to your order email.",
                                status_code=503)
        return page("edit_received", order)

    def submit(request: Request, form: dict[str, str]) -> HTMLResponse:
        order = find(request)
        if order is None:
            return HTMLResponse("Not found", status_code=404)
        reason = " ".join(form.get("reason", "").split())[:500]
        try:
            cfg.start_cancellation(order.id, order.name, reason)
        except Exception:  # the customer is told to write instead; nothing was started
            log.exception("could not start the cancellation review for %s", order.name)
            return HTMLResponse("We could not take your request right now; please reply to your order email.",
                                status_code=503)
        return page("cancel_received", order)

    return [Route("/cancel/{order_id}", get_page(show), methods=["GET"]),
            Route("/cancel/{order_id}", post_form(submit, MAX_FORM_BYTES), methods=["POST"]),
            Route("/edit/{order_id}", get_page(show_edit), methods=["GET"]),
            Route("/edit/{order_id}", post_form(submit_edit, MAX_FORM_BYTES), methods=["POST"])]


def start_cancellation_run(order_id: int, order_name: str, reason: str, channel: str = "self_serve") -> str:
    """Start a `cancellation-review` run through its deployment; returns the run id."""
    from tasks.launch import launch

    return launch("cancellation-review/cancellation-review", {"order_id": order_id, "order_name": order_name,
                  "channel": channel, "reason": reason}, f"cancellation-review {order_name}")


def start_edit_run(order_id: int, order_name: str, request: dict, channel: str = "self_serve") -> str:
    """Start an `order-edit` run through its deployment; returns the run id."""
    from tasks.launch import launch

    return launch("order-edit/order-edit", {"order_id": order_id, "order_name": order_name, "request": request,
                  "channel": channel}, f"order-edit {order_name}")
