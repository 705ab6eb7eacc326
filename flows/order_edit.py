"""SOP 2: a customer asks to change an order (`order-edit #1042`).

1. Record the request. Take the order's lease (edits on one order run one after the other), read
   the order as Shopify and the 3PL tell it now (the live stage, not a remembered one), and check
   the request: bad input is refused with a clear error and nothing changes.
2. Decide by policy (domain/order_edit.py): apply, approval by a role (the order held with
   `ac:hold:approval` meanwhile where the policy says so), or deny. New addresses are judged by
   the address SOP's decision first.
3. Apply through Shopify (orderUpdate for contact and address; an order edit for items and the
   shipping method), re-check stock for the changed lines (a shortfall holds the order with
   `ac:hold:inventory` and asks ops), tag `ac:edited:<what>`, send the new version to the 3PL when
   it has the order, and tell the customer (`edit_approved`, or `address_updated`). Deny sends
   `edit_denied` with what the customer can still do. Holds are released by their own ids.
Every effect goes through the ledger under the request's id.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger

from config import clock
from domain.address import check_address
from domain.order_edit import EditFacts, Line, Variant, decide_edit
from domain.orders import live_stage
from flows.approvals import ApprovalRequest, await_approval, record_effect
from flows.order_actions import customer_language, hold_everywhere, lift_everywhere, tell_customer
from flows.runtime import Runtime, runtime
from tasks import effects
from tasks.db.models import Decision, EditRequest
from tasks.db.store import as_utc
from tasks.edit_io import (acquire_order, edit_items, load_order, open_request, others_waiting, release_order,
                           update_contact, update_request)

EDITED_TAG = {"contact_change": "ac:edited:contact", "address_unit_change": "ac:edited:address",
              "address_change": "ac:edited:address", "shipping_method_change": "ac:edited:shipping"}


def _facts(order: dict[str, Any], stage: str) -> EditFacts:
    return EditFacts(
        stage=stage, placed_at=datetime.fromisoformat(order["created_at"].replace("Z", "+00:00")),
        lines=tuple(Line(li["id"], li["sku"] or "", li["quantity"], li["product_id"], tuple(li["product_tags"]))
                    for li in order["lines"] if li["quantity"] > 0),
        risk=order["risk"], payment_review=order["payment_review"], order_type=order["order_type"],
        cancelled=order["cancelled"], address=order["shipping_address"],
        variants={sku: Variant(v["id"], sku, v["product_id"], tuple(v["product_tags"]), v["available"])
                  for sku, v in order["variants"].items()})


def _what(rt: Runtime, order: dict[str, Any], edit_class: str) -> str:
    from config.messages import strings

    return strings(customer_language(rt, order))["edit"][edit_class]


def apply_edit(rt: Runtime, order: dict[str, Any], request: dict[str, Any], edit_class: str, key: str) -> dict:
    """Carry the edit out in Shopify, re-check stock, tell the 3PL and the customer."""
    oid = order["id"]
    lines = {ref: li for li in order["lines"] for ref in (li["sku"], li["id"], li["id"].rsplit("/", 1)[-1])}
    if edit_class == "contact_change":
        update_contact(rt.database_url, oid, request.get("email"), request.get("phone"), effect_key=f"{key}:update")
    elif edit_class in ("address_change", "address_unit_change"):
        effects.update_shipping_address(rt.database_url, oid, {**order["shipping_address"], **request["address"]},
                                        effect_key=f"{key}:update")
    else:
        quantities, add = {}, []
        kind = request["kind"]
        if kind in ("quantity_change", "remove_item"):
            quantities[lines[request["line"]]["id"]] = 0 if kind == "remove_item" else request["quantity"]
        elif kind == "variant_swap":
            old = lines[request["line"]]
            quantities[old["id"]] = 0
            add.append([order["variants"][request["sku"]]["id"], old["quantity"]])
        elif kind == "add_item" and request["sku"] in lines:  # already on the order: more of that line
            quantities[lines[request["sku"]]["id"]] = lines[request["sku"]]["quantity"] + request.get("quantity", 1)
        elif kind == "add_item":
            add.append([order["variants"][request["sku"]]["id"], request.get("quantity", 1)])
        edit_items(rt.database_url, oid, quantities, add, request.get("shipping"), effect_key=f"{key}:edit")
    effects.add_tags(rt.database_url, oid, [EDITED_TAG.get(edit_class, "ac:edited:items")], effect_key=f"{key}:tag")
    after = load_order(rt.database_url, oid, [])
    short = [f"{li['sku']} ({after['variants'][li['sku']]['available']})" for li in after["lines"]
             if li["quantity"] > 0 and li["sku"] in after["variants"] and after["variants"][li["sku"]]["available"] < 0]
    if (edit_class != "contact_change" and after.get("warehouse")
            and after["warehouse"]["status"] not in ("shipped", "cancelled")):
        sent = effects.send_to_3pl(rt.database_url, oid, [{"sku": li["sku"], "quantity": li["quantity"]}
                                                          for li in after["lines"] if li["quantity"] > 0],
                                   after["shipping_address"], after["warehouse"].get("flags") or [],
                                   effect_key=f"{key}:3pl", return_state=True)
        if sent.is_failed():  # a downstream mistake: Shopify has the edit, the warehouse could not take it
            get_run_logger().error("%s: the 3PL refused the new version (%s); ops must fix it at the warehouse",
                                   order["name"], sent.message)
        confirmed = not sent.is_failed()
    else:
        confirmed = True
    if edit_class in ("address_change", "address_unit_change"):
        tell_customer(rt, order, "address_updated", key, address={**order["shipping_address"], **request["address"]})
    else:
        tell_customer(rt, order, "edit_approved", key, what=_what(rt, order, edit_class))
    return {"short": short, "after": after, "confirmed_by_3pl": confirmed}


def _run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    return f"order-edit {p.get('order_name') or p.get('order_id')}"


@flow(name="order-edit", flow_run_name=_run_name)
def order_edit(order_id: int, request: dict[str, Any], channel: str = "self_serve", order_name: str = "",
               now: datetime | None = None) -> dict[str, Any]:
    from prefect.runtime import flow_run

    log = get_run_logger()
    rt = runtime()
    policy = rt.policy
    run_id = str(flow_run.id)
    kind = request.get("kind") if isinstance(request, dict) else None
    req = open_request(rt.database_url, EditRequest(
        order_id=order_id, order_name=order_name or str(order_id), channel=channel, kind=str(kind),
        request=request if isinstance(request, dict) else {"raw": repr(request)[:500]}, flow_run_id=run_id,
        policy_version=policy.version))
    if req.status in ("applied", "denied", "refused"):
        return {"outcome": req.status, "request": req.id, "error": req.error}
    key = f"order:{order_id}:edit:{req.id}"
    acquire_order(rt.database_url, order_id, run_id)
    try:
        skus = [request.get("sku")] if isinstance(request, dict) and request.get("sku") else []
        order = load_order(rt.database_url, order_id, skus)
        if order is None:
            update_request(rt.database_url, req.id, status="refused", error=f"order {order_id} does not exist")
            return {"outcome": "refused", "request": req.id, "error": f"order {order_id} does not exist"}
        stage = live_stage(order["fulfillment_status"], (order["warehouse"] or {}).get("status"),
                           order["recorded_stage"])
        at = clock.utc(now)
        if req.status == "waiting":  # a re-run after the suspension: judge as when it was asked
            stage, at = req.stage or stage, as_utc(req.requested_at)
        verdict = None
        if kind == "address_change" and isinstance(request.get("address"), dict):
            verdict = check_address({**order["shipping_address"], **request["address"]}).verdict
        d = decide_edit(request, _facts(order, stage), policy, at, verdict)
        decision = Decision(sop="order_edit", subject=f"order:{order_id}", outcome=d.outcome,
                            reasons=list(d.reasons), rule=d.rule, policy_version=policy.version,
                            policy_hash=policy.content_hash,
                            inputs={"request": req.id, "kind": kind, "class": d.edit_class, "tier": d.tier,
                                    "stage": stage, "channel": channel, "address_verdict": verdict})
        req = update_request(rt.database_url, req.id, decision, rule=d.rule, edit_class=d.edit_class, stage=stage,
                             order_name=order["name"])
        log.info("%s: %s %s -> %s (%s)", order["name"], kind, d.edit_class, d.outcome, d.rule)
        if d.outcome == "refuse":
            update_request(rt.database_url, req.id, status="refused", error=d.reasons[0])
            return {"outcome": "refused", "request": req.id, "error": d.reasons[0]}
        if d.outcome == "deny":
            deny(rt, order, d.edit_class, stage, key, "why_packed" if stage in ("packed", "label_created")
                 else "why_shipped")
            update_request(rt.database_url, req.id, status="denied")
            return {"outcome": "denied", "request": req.id, "rule": d.rule}
        if d.outcome == "apply":
            done = apply_edit(rt, order, request, d.edit_class, key)
        else:
            holds = hold_everywhere(rt, order, d.hold, key) if d.hold else []
            update_request(rt.database_url, req.id, status="waiting")
    finally:
        release_order(rt.database_url, order_id, run_id)
    if d.outcome == "apply":
        settle_stock(rt, done["after"], done["short"], key)  # outside the lease: it may wait for ops
        update_request(rt.database_url, req.id, status="applied")
        return {"outcome": "applied", "request": req.id, "rule": d.rule}

    answer = await_approval(ApprovalRequest(
        kind="order_edit", order_id=order_id, order_name=order["name"], role=d.role, request_key=f"e{req.id}",
        asked=f"Apply this {d.edit_class.replace('_', ' ')} ({_describe(request)}) at stage {stage}?",
        rule=f"order_edit.{d.rule}", context={"customer": order.get("email") or "-", "stage": stage,
                                               "why": "; ".join(d.reasons), "address": order["shipping_address"],
                                               "items": [{"sku": li["sku"], "quantity": li["quantity"]}
                                                         for li in order["lines"]], "request": request}))
    acquire_order(rt.database_url, order_id, run_id)
    try:
        order = load_order(rt.database_url, order_id, skus)  # as it is now, after the wait
        done = apply_edit(rt, order, request, d.edit_class, key) if answer.decision == "approve" else None
        # closed inside the lease, so the last edit to finish sees no other waiting and lifts the hold
        update_request(rt.database_url, req.id, status="applied" if done else "denied")
        if d.hold and not others_waiting(rt.database_url, order_id, req.id):  # it stays for another waiting edit
            # the warehouse's hold lifts once it has confirmed the new version (or nothing changed)
            lift_everywhere(rt, order, d.hold, holds, key, warehouse=done is None or done["confirmed_by_3pl"])
        if done is None:
            deny(rt, order, d.edit_class, stage, key, "why_rejected")
    finally:
        release_order(rt.database_url, order_id, run_id)
    record_effect(answer, {"applied": done is not None})
    if done is None:
        return {"outcome": "denied", "request": req.id, "rule": d.rule, "approver": answer.approver}
    settle_stock(rt, done["after"], done["short"], key)
    return {"outcome": "applied", "request": req.id, "rule": d.rule, "approver": answer.approver}


def _describe(request: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in request.items() if k != "kind" and not isinstance(v, dict)) or \
        ", ".join(f"{k}={v}" for k, v in (request.get("address") or {}).items())


def deny(rt: Runtime, order: dict[str, Any], edit_class: str | None, stage: str, key: str, why: str) -> None:
    from config.messages import strings

    t = strings(customer_language(rt, order))["edit"]
    tell_customer(rt, order, "edit_denied", key, what=t.get(edit_class or "", edit_class or ""), why=t[why],
          instead=t["instead_shipped"] if stage in ("shipped", "in_transit", "out_for_delivery", "delivered")
          else t["instead_other"])


def settle_stock(rt: Runtime, order: dict[str, Any], short: list[str], key: str) -> None:
    """A line the edit left without stock: hold the order (`ac:hold:inventory`) and ask ops; the
    hold is released by its id when ops approve, kept when they reject."""
    if not short:
        return
    holds = hold_everywhere(rt, order, "ac:hold:inventory", key)
    answer = await_approval(ApprovalRequest(
        kind="inventory_conflict", order_id=order["id"], order_name=order["name"], role=rt.policy.fulfillment.inventory_conflict_role,
        request_key=f"{key.rsplit(':', 1)[-1]}-stock", rule="fulfillment.inventory_conflict_role",
        asked=f"Stock went short after an edit: {', '.join(short)}. Release the order to ship anyway?",
        context={"customer": order.get("email") or "-", "why": "stock re-check after an edit",
                 "items": [{"sku": li["sku"], "quantity": li["quantity"]} for li in order["lines"]]}))
    if answer.decision == "approve":
        lift_everywhere(rt, order, "ac:hold:inventory", holds, key)
    record_effect(answer, {"released": answer.decision == "approve"})
