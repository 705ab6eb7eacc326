"""SOP 3: a customer asks to cancel an order (`cancellation-review #1042`).

1. Record the request with its channel and reason; a request for an order that already has one
   open joins it (nothing else happens), unless the run serving the open one is gone (crashed):
   then this run takes it over and finishes it. Unknown orders, orders already cancelled and
   refund amounts above what was captured are refused with the error recorded.
2. Decide by policy (domain/cancellation.py): apply, deny, or approval by a role.
3. Apply: cancel in Shopify (reason, restock, refund to the original payment; a partial amount
   goes through refundCreate with the ledger's @idempotent key), tell the 3PL if it has the
   order, tag `ac:cancel:approved`, send `cancellation_approved`.
   Deny: tag `ac:cancel:denied`, send `cancellation_denied` (return instructions after shipping).
   Approval: tag `ac:cancel:requested`, send `cancellation_received`, ask the 3PL to pull the order
   back first where the rule says so, then wait for the approver (who sees the 3PL's answer).
`ac:manual` orders get no automatic messages. Every effect goes through the ledger under the
request's id: a re-run, a crash or a duplicate never cancels, refunds or mails twice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from prefect import flow, get_run_logger

from config import clock
from domain.approvals import deadline_for
from domain.cancellation import CancelFacts, check_refund_amount, decide_cancellation
from flows.approvals import ApprovalRequest, asked_by_this_run, await_approval, effect_of
from flows.order_actions import customer_language, tell_customer
from flows.runtime import Runtime, runtime
from tasks import effects
from tasks.cancel_io import (decide_request, load_order, open_or_join, pull_back, record_refused, update_request,
                             warehouse_has)
from tasks.db.models import CancelRequest, Decision
from tasks.db.store import as_utc


def _why(rt: Runtime, order: dict[str, Any], code: str) -> str:
    from config.messages import strings

    texts = strings(customer_language(rt, order))["cancellation"]
    return texts.get(code, texts["rejected"])


def apply_cancellation(rt: Runtime, order: dict[str, Any], req: CancelRequest, key: str, pulled: bool,
                       untag: list[str] | None = None) -> str:
    """Cancel, refund (all of it with the cancellation, or the partial amount by refundCreate), tell
    the 3PL, tag (taking `untag` off in the same request), tell the customer. Returns the amount refunded."""
    rules = rt.policy.cancellation.apply
    oid = order["id"]
    partial = req.amount is not None
    effects.cancel_order(rt.database_url, oid, rules.reason, rules.restock,
                         rules.refund_to_original_payment and not partial, effect_key=f"{key}:cancel")
    refunded = "0.00"
    if partial:
        effects.refund_order(rt.database_url, oid, req.amount, (order["gateways"] or ["manual"])[0],
                             f"cancellation request {req.id}", effect_key=f"{key}:refund")
        refunded = req.amount
    elif rules.refund_to_original_payment:
        refunded = order["captured"]
    if not pulled and warehouse_has(oid):
        pull_back(rt.database_url, oid, effect_key=f"{key}:3pl")
    effects.add_tags(rt.database_url, oid, ["ac:cancel:approved"], effect_key=f"{key}:tag:approved", remove=untag)
    tell_customer(rt, order, "cancellation_approved", key,
          refund=refunded if Decimal(refunded) > 0 else None, currency=order["currency"])
    return refunded


def deny_cancellation(rt: Runtime, order: dict[str, Any], key: str, why: str, untag: list[str] | None = None) -> None:
    effects.add_tags(rt.database_url, order["id"], ["ac:cancel:denied"], effect_key=f"{key}:tag:denied",
                     remove=untag)
    tell_customer(rt, order, "cancellation_denied", key, why=_why(rt, order, why),
          shipped=order["stage"] in ("shipped", "in_transit", "out_for_delivery", "delivered", "failed_delivery"))


def ask_ops(rt: Runtime, order: dict[str, Any], req: CancelRequest, d, key: str, channel: str,
            reason: str) -> ApprovalRequest:
    """Before the wait: tag the order, tell the customer the request is being looked at, ask the 3PL
    to pull the order back where the rule says so; returns what the approver is asked (with the
    3PL's answer)."""
    oid = order["id"]
    policy = rt.policy
    effects.add_tags(rt.database_url, oid, ["ac:cancel:requested"], effect_key=f"{key}:tag:requested")
    if policy.cancellation.acknowledge_when_waiting:
        tell_customer(rt, order, "cancellation_received", key, why=_why(rt, order, "waiting"),
                      deadline=deadline_for(policy, d.role, as_utc(req.requested_at)),
                      timezone=policy.market_for(order.get("country_code")).timezone)
    answer = None
    if d.pull_back_from_3pl and warehouse_has(oid):
        answer = pull_back(rt.database_url, oid, effect_key=f"{key}:3pl")
    warehouse = ("not at the warehouse" if answer is None else
                 f"3PL {'pulled it back' if answer.get('accepted') else 'could not pull it back'}"
                 f" ({answer.get('pulled_back_from') or answer.get('reason') or answer.get('status')})")
    return ApprovalRequest(
        kind="cancellation", order_id=oid, order_name=order["name"], role=d.role, request_key=f"r{req.id}",
        asked=f"Cancel {order['name']} and refund {order['captured']} {order['currency']}? ({warehouse})",
        rule=f"cancellation.rules.{d.rule}",
        context={"customer": order.get("email") or "-", "stage": order["stage"], "items": order["line_items"],
                 "why": "; ".join(d.reasons), "warehouse": answer, "channel": channel, "reason": reason})


def _run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    return f"cancellation-review {p.get('order_name') or p.get('order_id')}"


@flow(name="cancellation-review", flow_run_name=_run_name)
def cancellation_review(order_id: int, channel: str, reason: str = "", amount: str | None = None,
                        order_name: str = "") -> dict[str, Any]:
    from prefect.runtime import flow_run

    log = get_run_logger()
    rt = runtime()
    policy = rt.policy
    request = CancelRequest(order_id=order_id, order_name=order_name or str(order_id), channel=channel,
                            reason=reason, amount=amount, policy_version=policy.version, flow_run_id=str(flow_run.id))
    order = load_order(rt.database_url, order_id)
    error = None
    if order is None:
        error = f"order {order_id} does not exist in this shop"
    else:
        error = check_refund_amount(amount, order["captured"])
    if error:
        refused = record_refused(rt.database_url, request, error)
        log.warning("cancellation request refused: %s", error)
        return {"outcome": "refused", "request": refused.id, "error": error}
    req, joined = open_or_join(rt.database_url, request.model_copy(update={"order_name": order["name"]}))
    if joined:
        log.info("%s already has an open cancellation request (%s): this one joins it", order["name"], req.id)
        return {"outcome": "joined", "request": req.id}
    if order["cancelled"] and req.rule is None:  # cancelled before this request was decided
        error = f"order {order['name']} is already cancelled"
        update_request(rt.database_url, req.id, status="refused", error=error)
        log.warning("cancellation request refused: %s", error)
        return {"outcome": "refused", "request": req.id, "error": error}
    # (a request decided by a run that crashed is taken over and finished here: the ledger skips what was done)

    key = f"order:{order_id}:cancel:{req.id}"
    resumed = asked_by_this_run("cancellation", order_id, f"r{req.id}") if req.status == "waiting" else None
    if resumed is None:
        facts = CancelFacts(stage=order["stage"], risk=order["risk"], chargebacks=order["chargebacks"],
                            customer_tags=tuple(order["customer_tags"]), order_tags=tuple(order["tags"]),
                            digital_delivered=order["order_type"] == "digital"
                            and order["fulfillment_status"] == "FULFILLED")
        d = decide_cancellation(facts, policy)
        req = decide_request(rt.database_url, req.id, Decision(
            sop="cancellation", subject=f"order:{order_id}", outcome=d.outcome if d.outcome != "approval" else
            f"approval:{d.role}", reasons=list(d.reasons), rule=d.rule, policy_version=policy.version,
            policy_hash=policy.content_hash, inputs={"request": req.id, "channel": channel, "reason": reason,
                                                     "matched": list(d.matched), "stage": order["stage"]}),
            rule=d.rule, status="waiting" if d.outcome == "approval" else "open")
        log.info("%s: %s (rule %s)", order["name"], d.outcome, d.rule)

        if d.outcome == "deny":
            deny_cancellation(rt, order, key, d.rule)
            update_request(rt.database_url, req.id, status="denied")
            return {"outcome": "denied", "request": req.id, "rule": d.rule}
        if d.outcome == "apply":
            refunded = apply_cancellation(rt, order, req, key, pulled=False)
            update_request(rt.database_url, req.id, status="applied", refunded=refunded)
            return {"outcome": "applied", "request": req.id, "rule": d.rule, "refunded": refunded}
        asked, row = ask_ops(rt, order, req, d, key, channel, reason), None
    else:  # resumed after the wait (a suspended run re-runs from the top): decided, tagged, told and
        asked, row = resumed  # asked before the suspend, so straight to the approver's answer
    out = await_approval(asked, known=row)
    answer, rule, waiting_tag = asked.context.get("warehouse"), req.rule, ["ac:cancel:requested"]
    if out.decision == "approve":
        refunded = apply_cancellation(rt, order, req, key, pulled=answer is not None, untag=waiting_tag)
        update_request(rt.database_url, req.id, effect_of(out, {"cancelled": True, "refunded": refunded}),
                       status="applied", refunded=refunded)
        return {"outcome": "applied", "request": req.id, "rule": rule, "refunded": refunded,
                "approver": out.approver}
    deny_cancellation(rt, order, key, "rejected", untag=waiting_tag)
    update_request(rt.database_url, req.id, effect_of(out, {"cancelled": False}), status="denied")
    return {"outcome": "denied", "request": req.id, "rule": rule, "approver": out.approver}


def month_bounds(month: str):
    """`YYYY-MM` -> [first day, first day of the next month) in UTC; a clear error otherwise."""
    from datetime import datetime, timezone

    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=timezone.utc)
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, not {month!r}") from None
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, end


def _previous_month() -> str:
    from datetime import timedelta

    return (clock.now().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


@flow(name="cancellation-report")
def cancellation_report(month: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Monthly reasons report (default: last month), published as table artifacts."""
    from prefect.artifacts import create_table_artifact

    from tasks.cancel_io import gather_report

    month = month or _previous_month()
    start, end = month_bounds(month)
    report = gather_report(runtime().database_url, start, end)
    for name, table in report.items():
        create_table_artifact(key=f"cancellations-{name.replace('_', '-')}", table=table or [{"note": "no requests"}],
                              description=f"cancellation requests {month}: {name.replace('_', ' ')}")
    return report
