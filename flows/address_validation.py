"""SOP 4, one exception: `address-review #1042`.

The drain judges every new order's address in bulk; an order whose address is `review` or
`invalid` gets this run:

1. read the order and judge its address again (it may have been fixed since);
2. before `label_created`: hold it with this SOP's own handle (`ac:hold:address`,
   INCORRECT_ADDRESS), tag it, and send `address_confirm_request` in the customer's language with
   a signed self-serve correction link;
3. wait for the customer until the policy's window closes (the correction form resumes this run;
   the deadline sweep resumes it when the window runs out). A correction that validates is
   applied with `orderUpdate`, tagged `ac:edited:address`, the hold released by its id and
   `address_updated` sent;
4. no fix in time, or the order is already at `label_created` or later: ask an approver
   (ship as is where allowed, corrected address, cancel, keep the hold) and carry out the answer.

Every effect goes through the ledger under the review's id, so a re-run (suspend, crash, a
duplicate trigger) never holds, tags, mails or edits twice.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.input import RunInput

from config import clock
from domain.address import check_address
from domain.address_policy import address_outcome, carrier_of, review_key, with_verification
from domain.messages import pick_language
from flows.approvals import ApprovalRequest, await_approval, record_effect
from flows.order_actions import hold_fulfillment, release_holds, tell_customer
from flows.runtime import Runtime, runtime
from intake.links import correction_link
from tasks import effects
from tasks.address_io import (active_review, load_order, note_review_run, open_review, read_review, resolve_review,
                               set_review_status, verify_addresses)
from tasks.db.models import AddressReview, Decision
from tasks.db.store import as_utc


class CustomerWindowClosed(RunInput):
    """How the customer's window closed: `corrected` (the form) or `expired` (the deadline sweep)."""

    status: Literal["corrected", "expired"]


def _customer_name(order: dict[str, Any]) -> str:
    a = order.get("shipping_address") or {}
    return a.get("first_name") or (a.get("name") or "").split(" ")[0] or order.get("email") or ""


def _market_tz(rt: Runtime, order: dict[str, Any]) -> str:
    return rt.policy.market_for((order.get("shipping_address") or {}).get("country_code")).timezone


def await_customer(rt: Runtime, review_id: str, deadline: datetime) -> AddressReview:
    """Wait (suspended in a deployment, paused in-process) until the review's window closes."""
    from prefect.flow_runs import pause_flow_run, suspend_flow_run
    from prefect.runtime import flow_run

    from flows.approvals import _in_deployment

    log = get_run_logger()
    run_id = str(flow_run.id)
    timeout = max(60, int((deadline - clock.now()).total_seconds()) + 86400)
    for n in range(100):
        row = read_review(rt.database_url, review_id)
        if row.status != "waiting":
            return row
        note_review_run(rt.database_url, review_id, run_id)
        key = re.sub(r"[^a-z0-9-]+", "-", f"{review_id}-customer-{n}".lower())
        log.info("waiting for the customer's correction until %s UTC", f"{deadline:%Y-%m-%d %H:%M}")
        if _in_deployment():
            suspend_flow_run(wait_for_input=CustomerWindowClosed, key=key, timeout=timeout)
        else:
            pause_flow_run(wait_for_input=CustomerWindowClosed, key=key, timeout=timeout, poll_interval=1)
    raise RuntimeError(f"{review_id}: resumed 100 times while the window was still open")


def hold_order(rt: Runtime, order: dict[str, Any], review_id: str) -> list[dict[str, str]]:
    """This SOP's hold on every fulfillment order that can take one, and its tag."""
    handle = rt.policy.address.hold_handle
    holds = hold_fulfillment(rt, order, handle, f"address review {review_id}", review_id)
    effects.add_tags(rt.database_url, order["id"], [handle], effect_key=f"{review_id}:tag:hold")
    return holds


def release(rt: Runtime, order: dict[str, Any], review_id: str, holds: list[dict[str, str]]) -> None:
    """Release this SOP's holds by their ids (never "release all": other apps' holds stay), and its tag."""
    if not holds:
        return
    release_holds(rt, order, holds, review_id)
    effects.remove_tags(rt.database_url, order["id"], [rt.policy.address.hold_handle],
                        effect_key=f"{review_id}:untag:hold")


def apply_address(rt: Runtime, order: dict[str, Any], review_id: str, address: dict[str, Any],
                  language: str, holds: list[dict[str, str]]) -> None:
    """The corrected address into Shopify, tagged, released, and the customer told."""
    effects.update_shipping_address(rt.database_url, order["id"], address, effect_key=f"{review_id}:update")
    effects.add_tags(rt.database_url, order["id"], ["ac:edited:address"], effect_key=f"{review_id}:tag:edited")
    release(rt, order, review_id, holds)
    if order.get("email"):
        effects.send_customer_message(
            rt.database_url, order["id"], order["email"], "address_updated", language,
            {"order_name": order["name"], "customer_name": _customer_name(order), "address": address},
            effect_key=f"{review_id}:message:address_updated")


def _ask_approver(rt: Runtime, order: dict[str, Any], review: AddressReview, why: str, rule: str):
    return await_approval(ApprovalRequest(
        kind="address_review", order_id=order["id"], order_name=order["name"], role=rt.policy.address.timeout_role,
        request_key=review.id.rsplit(":", 1)[-1], rule=rule,
        asked="Ship to this address as it is, correct it, cancel the order, or keep it on hold?",
        context={"customer": order.get("email") or "-", "stage": order["stage"], "why": why,
                 "address": order["shipping_address"],
                 "items": [], "reasons": list(review.reasons), "suggestions": review.suggestions},
        address_verdict=review.verdict))


@flow(name="address-review", flow_run_name="address-review {order_name}")
def address_review(order_id: int, order_name: str, now: datetime | None = None) -> dict[str, Any]:
    log = get_run_logger()
    rt = runtime()
    policy = rt.policy
    order = load_order(rt.database_url, order_id)
    if order is None:
        raise ValueError(f"order {order_id} ({order_name}) does not exist in the store")
    # An open review goes on with the address it was opened for (the order may already carry the
    # correction when a run re-runs after a crash); otherwise judge the address the order has now.
    review = active_review(rt.database_url, order_id)
    address = review.address if review else order["shipping_address"]
    verdict = check_address(address)
    if review is None and verdict.verdict == "valid":  # the optional online verifier, as the drain asks it
        verdict = with_verification(verdict, verify_addresses([address])[0])
    carrier = carrier_of(order["shipping_line"], policy)
    outcome = address_outcome(verdict, policy, order["stage"], carrier)
    if review is None and (outcome.action == "accept" or order["cancelled"]):
        log.info("%s: address %s (%s); nothing to do", order_name, verdict.verdict, outcome.rule)
        return {"order": order_name, "verdict": verdict.verdict, "outcome": "accepted"}

    key = review_key(address)
    review_id = f"address:{order_id}:{key}"
    lang = pick_language(policy, order.get("customer_locale"), address.get("country_code"))
    opened = clock.utc(now)
    window = timedelta(hours=policy.address.correction_window_hours)
    # the path is the one the review was opened on: a customer window, or straight to an approver
    asks_customer = (review.deadline > review.opened_at) if review else outcome.action == "hold_and_ask_customer"
    review = open_review(rt.database_url, AddressReview(
        id=review_id, order_id=order_id, order_name=order["name"], verdict=verdict.verdict,
        reasons=list(verdict.reasons), address=address, suggestions=verdict.suggestions, language=lang.language,
        email=order.get("email"), opened_at=opened, deadline=opened + (window if asks_customer else timedelta(0)),
        status="waiting" if asks_customer else "approval", policy_version=policy.version,
    ), Decision(sop="address", subject=f"order:{order_id}", outcome=outcome.action,
                reasons=[*verdict.reasons, *outcome.reasons], rule=outcome.rule, policy_version=policy.version,
                policy_hash=policy.content_hash,
                inputs={"review": review_id, "verdict": verdict.verdict, "stage": order["stage"], "carrier": carrier,
                        "language": lang.language, "language_reason": lang.reason}))
    if review.status == "resolved":
        log.info("%s: review %s already resolved (%s)", order_name, review_id, review.outcome)
        return {"order": order_name, "verdict": review.verdict, "outcome": review.outcome}

    deadline = as_utc(review.deadline)
    holds: list[dict[str, str]] = []
    if asks_customer:
        holds = hold_order(rt, order, review_id)
        if order.get("email"):
            effects.send_customer_message(
                rt.database_url, order_id, order["email"], "address_confirm_request", lang.language,
                {"order_name": order["name"], "customer_name": _customer_name(order), "reasons": list(review.reasons),
                 "address": address, "deadline": deadline, "timezone": _market_tz(rt, order),
                 "link": correction_link(rt.settings.customer_url(), rt.settings.link_secret.get_secret_value(),
                                         order_id, key)},
                effect_key=f"{review_id}:message:address_confirm_request")
            closed = await_customer(rt, review_id, deadline)
        else:
            log.warning("%s has no email: no one to ask, an approver decides", order_name)
            set_review_status(rt.database_url, review_id, "expired")
            closed = read_review(rt.database_url, review_id)
        if closed.status == "resolved":  # another run of this review finished it meanwhile
            return {"order": order_name, "verdict": closed.verdict, "outcome": closed.outcome}
        if closed.status == "corrected":
            apply_address(rt, order, review_id, closed.corrected_address, lang.language, holds)
            resolve_review(rt.database_url, review_id, "customer_corrected", "customer")
            log.info("%s: the customer's correction is applied and the hold released", order_name)
            return {"order": order_name, "verdict": verdict.verdict, "outcome": "customer_corrected"}
        set_review_status(rt.database_url, review_id, "approval")
        why = "the customer did not correct the address within the window"
        rule = "address.timeout_role"
    else:
        why = f"the order is {order['stage']}: nothing changes automatically from {policy.address.no_automatic_change_from_stage}"
        rule = outcome.rule

    decision = _ask_approver(rt, order, review, why, rule)
    if decision.decision == "ship_as_is":
        if asks_customer:
            release(rt, order, review_id, holds)
        result = "ship_as_is"
    elif decision.decision == "correct_address":
        corrected = {**address, **(decision.address or {})}
        apply_address(rt, order, review_id, corrected, lang.language, holds)
        result = "corrected_by_approver"
    elif decision.decision == "cancel":
        done = effects.cancel_order(rt.database_url, order_id, "OTHER", True, True, effect_key=f"{review_id}:cancel")
        result = "cancelled"
        tell_customer(rt, order, "address_rejected", review_id, reasons=list(review.reasons), address=address,
                      customer_name=_customer_name(order))
        record_effect(decision, {"cancelled_at": done.get("cancelledAt")})
    else:
        result = "kept_hold"
    if decision.decision != "cancel":
        record_effect(decision, {"outcome": result})
    resolve_review(rt.database_url, review_id, result, decision.approver)
    log.info("%s: %s decided %s", order_name, decision.approver, decision.decision)
    return {"order": order_name, "verdict": verdict.verdict, "outcome": result, "approver": decision.approver}
