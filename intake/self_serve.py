"""The customer's self-serve cancellation link (SOP 3), served by the intake service.

GET `/cancel/<order id>?t=<signature>` shows a one-field form in the customer's language; POST
starts a `cancellation-review` run with channel `self_serve` and the reason typed (a second
request for the same order joins the open one, so pressing twice does nothing more). The link is
signed per order; a wrong signature is a 404.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from domain.messages import pick_language
from domain.policy import Policy
from intake.links import link_token, token_ok
from tasks.db import store

log = logging.getLogger("aftercart.intake.self_serve")
MAX_FORM_BYTES = 4 * 1024


def cancel_link(base_url: str, secret: str, order_id: int) -> str:
    return f"{base_url.rstrip('/')}/cancel/{order_id}?t={link_token(secret, f'cancel:{order_id}')}"


@dataclass(frozen=True)
class SelfServe:
    link_secret: str
    policy: Callable[[], Policy]
    start_cancellation: Callable[[int, str, str], None]  # (order id, order name, reason)


def routes(database_url: str, cfg: SelfServe) -> list[Route]:
    from config.messages import render_page

    def find(request: Request):
        try:
            oid = int(request.path_params["order_id"])
        except ValueError:
            return None
        if not token_ok(cfg.link_secret, f"cancel:{oid}", request.query_params.get("t")):
            return None
        return store.get_order(database_url, oid)

    def page(name: str, order, status: int = 200) -> HTMLResponse:
        lang = pick_language(cfg.policy(), order.customer_locale, order.country_code).language
        return HTMLResponse(render_page(name, lang, {"order_name": order.name}), status_code=status)

    def show(request: Request) -> HTMLResponse:
        order = find(request)
        return page("cancel_form", order) if order else HTMLResponse("Not found", status_code=404)

    def submit(request: Request, body: bytes) -> HTMLResponse:
        order = find(request)
        if order is None:
            return HTMLResponse("Not found", status_code=404)
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        reason = " ".join((form.get("reason") or [""])[0].split())[:500]
        try:
            cfg.start_cancellation(order.id, order.name, reason)
        except Exception:  # the customer is told to write instead; nothing was started
            log.exception("could not start the cancellation review for %s", order.name)
            return HTMLResponse("We could not take your request right now; please reply to your order email.",
                                status_code=503)
        return page("cancel_received", order)

    async def get(request: Request) -> HTMLResponse:
        return await run_in_threadpool(show, request)

    async def post(request: Request) -> HTMLResponse:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                return HTMLResponse("Form too large", status_code=413)
        return await run_in_threadpool(submit, request, body)

    return [Route("/cancel/{order_id}", get, methods=["GET"]), Route("/cancel/{order_id}", post, methods=["POST"])]


def start_cancellation_run(order_id: int, order_name: str, reason: str, channel: str = "self_serve") -> str:
    """Start a `cancellation-review` run through its deployment; returns the run id."""
    from prefect.deployments import run_deployment

    run = run_deployment(name="cancellation-review/cancellation-review", timeout=0, as_subflow=False,
                         parameters={"order_id": order_id, "order_name": order_name, "channel": channel,
                                     "reason": reason}, flow_run_name=f"cancellation-review {order_name}")
    return str(run.id)
