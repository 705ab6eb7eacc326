"""The customer's self-serve address correction form (SOP 4), served by the intake service.

GET shows the address under review with what is wrong, in the customer's language. POST checks
the correction with the same rule a new order's address passes: a correction that validates
closes the window and resumes the waiting `address-review` run; one that does not shows the form
again with its reasons (counted as an attempt, nothing applied). Links are signed per review; a
wrong signature is a 404, a closed review a page that says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from domain.address import check_address
from domain.address_policy import carrier_of, check_correction, with_verification
from domain.policy import Policy
from intake.links import token_ok
from intake.pages import get_page, post_form
from tasks.db import address_store, store
from tasks.db.store import as_utc

log = logging.getLogger("aftercart.intake.corrections")

FORM_FIELDS = ("name", "address1", "address2", "city", "province_code", "zip")
MAX_FORM_BYTES = 16 * 1024


@dataclass(frozen=True)
class Corrections:
    link_secret: str
    policy: Callable[[], Policy]
    resume: Callable[[str, dict[str, Any]], None]  # (flow run id, run input)
    verify: Callable[[list[dict[str, Any]]], list[dict[str, Any] | None]] | None = None  # the online verifier


def routes(database_url: str, cfg: Corrections) -> list[Route]:
    from config.messages import render_page
    from tasks.db import comms_store

    def page(name: str, review, status: int = 200, **ctx: Any) -> HTMLResponse:
        tz = cfg.policy().market_for((review.address or {}).get("country_code")).timezone
        html = render_page(name, review.language, {"order_name": review.order_name, "deadline": as_utc(review.deadline),
                                                   "timezone": tz, "suggestions": review.suggestions, **ctx})
        return HTMLResponse(html, status_code=status)

    def find(request: Request):
        try:
            review_id = f"address:{int(request.path_params['order_id'])}:{request.path_params['key']}"
        except ValueError:
            return None
        if not token_ok(cfg.link_secret, review_id, request.query_params.get("t")):
            return None
        return address_store.get_review(database_url, review_id)

    def show(request: Request) -> HTMLResponse:
        review = find(request)
        if review is None:
            return HTMLResponse("Not found", status_code=404)
        comms_store.record_link_open(database_url, "address", review.order_id)
        if review.status != "waiting":
            return page("address_closed", review, 410)
        return page("address_form", review, address=review.address, reasons=list(review.reasons))

    def submit(request: Request, form: dict[str, str]) -> HTMLResponse:
        review = find(request)
        if review is None:
            return HTMLResponse("Not found", status_code=404)
        if review.status != "waiting":
            return page("address_closed", review, 410)
        address = {**review.address, **{f: form.get(f, "").strip() for f in FORM_FIELDS}}
        address["first_name"], _, address["last_name"] = address["name"].partition(" ")
        verdict = check_address(address)
        if cfg.verify is not None and verdict.verdict == "valid":
            verdict = with_verification(verdict, cfg.verify([address])[0])
        order = store.get_order(database_url, review.order_id)
        snapshot = order.snapshot if order else {}
        carrier = carrier_of((snapshot.get("shipping_lines") or [{}])[0], cfg.policy())
        check = check_correction(verdict, cfg.policy(), carrier, review.address.get("country_code"))
        fixed = {**address, **{k: v for k, v in verdict.normalized.items() if k != "name"}} if check.accepted else address
        review = address_store.submit_correction(database_url, review.id, fixed, check.accepted, list(check.reasons))
        if not check.accepted:
            reasons = [r for r in check.reasons if r in verdict.reasons] or list(verdict.reasons)
            return page("address_form", review, 422, address=address, reasons=reasons)
        if review.status != "corrected":  # the window closed between the two reads
            return page("address_closed", review, 410)
        if review.flow_run_id:
            try:
                cfg.resume(review.flow_run_id, {"status": "corrected"})
            except Exception as exc:  # recorded; the deadline sweep resumes the run
                log.warning("could not resume run %s for %s: %s", review.flow_run_id, review.id, exc)
        return page("address_done", review, address=fixed)

    return [Route("/address/{order_id}/{key}", get_page(show), methods=["GET"]),
            Route("/address/{order_id}/{key}", post_form(submit, MAX_FORM_BYTES), methods=["POST"])]
