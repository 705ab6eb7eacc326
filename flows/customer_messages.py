"""SOP 1 and 8: customer messages by order state and order type, and the post-delivery follow-up.

Routine work, in bulk:
- the intake drain hands each batch of deliveries to `messages_for_batch`: order snapshots (placed,
  payment captured), the 3PL's pushes (the warehouse took the order: `fulfillment_started`) and the
  carrier's fulfillment events (shipped, out for delivery, delivered, delayed, per parcel) become
  events; each is decided by `domain.communication.decide_message` (template, language, or none and
  why), recorded, and the batch is mailed by one task through the effects ledger;
- the `customer-messages` schedule (hourly) sends the follow-ups that are due (three days after
  delivery, 10:00 in the market's time zone) unless a ticket, return or cancellation is open, and
  resends messages the mail server did not take.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.utilities.annotations import quote  # big batches: Prefect need not walk every message

from config import clock
from domain.communication import (OrderEvent, Parcel, decide_followup, decide_message, effect_key, followup_due,
                                  late_parcel_event, message_context, message_order, order_events, shipment_event)
from flows.runtime import Runtime, decision_row, runtime
from intake.self_serve import cancel_link, edit_link
from tasks.comms_io import (due_followups, late_parcel_candidates, load_message_state, open_returns,
                            product_tags_by_sku, save_message_state)
from tasks.inbox import record_decisions
from tasks.messages_io import resend_stuck_messages, send_customer_messages

_CARE_TAGS = {"fragile"}
_MESSAGE_TOPICS = ("orders/create", "orders/updated", "fulfillments/create", "fulfillments/update", "3pl/received")


def _parse(body: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def messages_for_batch(rt: Runtime, rows: list[dict[str, Any]], stages: dict[int, str], log,
                       now: datetime | None = None) -> Counter:
    """Decide and send the messages one batch of deliveries makes. `stages`: each order's stage
    after the batch. Returns counts by template (and `not_sent`)."""
    now = clock.utc(now)
    mine = [r for r in rows if r["order_id"] and (r["topic"] in _MESSAGE_TOPICS)]
    counts: Counter = Counter()
    if not mine:
        return counts
    state = load_message_state(rt.database_url, sorted({r["order_id"] for r in mine}))
    pending = {oid: c["payment_pending"] for oid, c in state["comms"].items()}
    parcels: dict[int, Parcel] = {int(fid): Parcel(p["fulfillment_id"], p["order_id"], p["stage"], p["updated_at"],
                                                   p["tracking_number"]) for fid, p in state["parcels"].items()}
    parcel_lines = {int(fid): p["lines"] for fid, p in state["parcels"].items()}
    changed_parcels: dict[int, dict[str, Any]] = {}
    comms: dict[int, dict[str, Any]] = {}
    events: list[OrderEvent] = []
    for r in mine:  # in delivery order: an order's create comes before its update
        payload, oid = _parse(r["body"]), r["order_id"]
        if r["topic"].startswith("orders/"):
            evs, still_pending = order_events(r["topic"], payload, pending.get(oid, False))
            if still_pending != pending.get(oid, False):
                pending[oid] = still_pending
                comms.setdefault(oid, {})["payment_pending"] = still_pending
            events += evs
        elif r["topic"] == "3pl/received":
            events.append(OrderEvent(oid, "released", now))
        else:
            fid = payload.get("id") if isinstance(payload, dict) else None
            parcel, ev, why = shipment_event(payload, parcels.get(fid) if isinstance(fid, int) else None, rt.policy)
            if parcel is not None:
                parcels[parcel.fulfillment_id] = parcel
                lines = (ev.detail.get("lines") if ev else None) or parcel_lines.get(parcel.fulfillment_id) or []
                parcel_lines[parcel.fulfillment_id] = lines
                first_seen = fid not in state["parcels"] and fid not in changed_parcels
                changed_parcels[parcel.fulfillment_id] = {
                    **changed_parcels.get(parcel.fulfillment_id, {}),
                    "fulfillment_id": parcel.fulfillment_id, "order_id": parcel.order_id, "stage": parcel.stage,
                    "tracking_number": parcel.tracking_number, "lines": lines, "updated_at": parcel.updated_at,
                    **({"shipped_at": parcel.updated_at} if first_seen else {})}
            if ev is not None:
                events.append(ev)
            else:
                log.debug("order %s: %s", oid, why)
    # every parcel event is checked against the parcel's stage after the whole batch
    events = [replace(e, parcel_stage=parcels[int(e.ref)].stage) if e.ref and int(e.ref) in parcels else e
              for e in events]
    decisions, messages = [], []
    orders = {oid: message_order(snap, stages.get(oid) or state["stages"].get(oid, "unfulfilled"))
              for oid, snap in state["snapshots"].items()}
    shipped_titles = _shipped_titles(parcels, parcel_lines)
    decided = []
    for ev in events:
        order = orders.get(ev.order_id)
        if order is None:
            continue
        if ev.ref:
            ev = replace(ev, detail={**ev.detail, "shipped_titles": sorted(shipped_titles.get(ev.order_id, ()))})
        decided.append((ev, order, decide_message(ev, order, rt.policy, now)))
    care = _care_skus(rt, [o for _e, o, d in decided if d.send], log)
    for ev, order, d in decided:
        decisions.append(decision_row(rt, "communication", order.id, d.template or "none", d.reasons,
                                      f"communication.events.{ev.event}", event=ev.event, ref=ev.ref,
                                      language=d.language, order_name=order.name))
        if not d.send:
            counts["not_sent"] += 1
            continue
        ctx = message_context(d.template, ev, order, rt.policy, now,
                              fragile=any(li.sku in care for li in order.lines))
        if ctx.get("self_serve"):
            secret = rt.settings.link_secret.get_secret_value()
            ctx["links"] = {"edit": edit_link(rt.settings.customer_url(), secret, order.id),
                            "cancel": cancel_link(rt.settings.customer_url(), secret, order.id)}
        messages.append({"order_id": order.id, "to": order.email, "template": d.template, "language": d.language,
                         "context": ctx, "effect_key": d.effect_key})
        counts[d.template] += 1
    if decisions:
        record_decisions(rt.database_url, quote(decisions))
    if messages:
        sent = send_customer_messages(rt.database_url, quote(messages), return_state=True)
        if sent.is_failed():  # the ledger keeps them: the customer-messages schedule resends
            log.error("sending %s messages failed (%s); they are resent from the ledger", len(messages), sent.message)
    comms.update(_deliveries(rt, parcels, orders, state, comms))
    save_message_state(rt.database_url, list(changed_parcels.values()), comms)
    return counts


def _shipped_titles(parcels: dict[int, Parcel], lines: dict[int, list]) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {}
    for fid, p in parcels.items():
        out.setdefault(p.order_id, set()).update(li.get("title") for li in lines.get(fid) or [] if li.get("title"))
    return out


def _care_skus(rt: Runtime, orders: list, log) -> set[str]:
    """SKUs whose product is tagged fragile (care notes), read once for the batch."""
    skus = sorted({li.sku for o in orders for li in o.lines if li.sku})
    if not skus:
        return set()
    tags = product_tags_by_sku(skus, return_state=True)
    if tags.is_failed():
        log.warning("could not read product tags (%s): messages go out without care notes", tags.message)
        return set()
    return {sku for sku, t in tags.result().items() if _CARE_TAGS & set(t)}


def _deliveries(rt: Runtime, parcels: dict[int, Parcel], orders: dict, state: dict, comms: dict) -> dict:
    """Orders now delivered (every parcel delivered, nothing left to ship): their follow-up is due
    three days later at 10:00 in the market's time zone."""
    out = {}
    for oid, order in orders.items():
        mine = [p for p in parcels.values() if p.order_id == oid]
        snap = state["snapshots"].get(oid) or {}
        if order is None or not mine or any(p.stage != "delivered" for p in mine):
            continue
        if snap.get("fulfillment_status") != "fulfilled" or (state["comms"].get(oid) or {}).get("followup_status"):
            continue
        delivered = max(p.updated_at for p in mine)
        out[oid] = {**comms.get(oid, {}), "delivered_at": delivered, "followup_status": "due",
                    "followup_due_at": followup_due(delivered, rt.policy, order.country_code)}
    return out


# ------------------------------------------------------------------ the schedule: follow-ups, resends

def _run_name() -> str:
    return f"customer-messages {clock.now():%Y-%m-%d %H:%M}"


@flow(name="customer-messages", flow_run_name=_run_name)
def customer_messages(now: datetime | None = None, batch_size: int = 500, max_batches: int = 20) -> dict[str, int]:
    """Send every post-delivery follow-up that is due (suppressed while a ticket, return or
    cancellation is open), then resend messages the mail server did not take."""
    log = get_run_logger()
    rt = runtime()
    now = clock.utc(now)
    totals: Counter = Counter()
    rows = []
    for _ in range(max_batches):
        due = due_followups(rt.database_url, now, batch_size)
        if not due["order_ids"]:
            break
        returns = open_returns(due["order_ids"], return_state=True)
        if returns.is_failed():  # without Shopify's word on returns nothing is sent; the next run retries
            log.error("could not read return status from Shopify (%s); follow-ups wait", returns.message)
            break
        open_returns_by_order = returns.result()
        messages, comms, decisions = [], {}, []
        for oid in due["order_ids"]:
            order = message_order(due["snapshots"].get(oid) or {}, due["stages"].get(oid, "delivered"))
            if order is None:
                comms[oid] = {"followup_status": "suppressed", "followup_reason": "order not in the store"}
                continue
            open_now = {**due["open"].get(oid, {}), "return": open_returns_by_order.get(oid, 0)}
            d = decide_followup(order, open_now, rt.policy)
            template = "post_delivery_followup"
            decisions.append(decision_row(rt, "communication", oid, template if d.send else "none", d.reasons,
                                          "communication.followup", event="followup_due", order_name=order.name,
                                          open=open_now))
            comms[oid] = {"followup_status": "sent" if d.send else "suppressed", "followup_reason": "; ".join(d.reasons)}
            rows.append({"order": order.name, "follow-up": "sent" if d.send else "suppressed",
                         "why": "; ".join(d.reasons)})
            totals["sent" if d.send else "suppressed"] += 1
            if d.send:
                from domain.messages import pick_language

                lang = pick_language(rt.policy, order.customer_locale, order.country_code).language
                ev = OrderEvent(oid, "followup", now)
                messages.append({"order_id": oid, "to": order.email, "template": template, "language": lang,
                                 "context": message_context(template, ev, order, rt.policy, now),
                                 "effect_key": effect_key(oid, template)})
        record_decisions(rt.database_url, quote(decisions))
        if messages:
            send_customer_messages(rt.database_url, quote(messages))
        save_message_state(rt.database_url, [], comms)
    totals["late_parcels"] = late_parcels(rt, now, log)
    resent = resend_stuck_messages(rt.database_url)
    totals["resent"] = resent["sent"]
    if rows:
        create_table_artifact(key="customer-followups", table=rows[:500],
                              description=f"post-delivery follow-ups at {now:%Y-%m-%d %H:%M} UTC: {dict(totals)}")
    log.info("follow-ups: %s sent, %s suppressed; %s delay notices for passed promises; %s stuck messages resent",
             totals["sent"], totals["suppressed"], totals["late_parcels"], totals["resent"])
    return {"followups_sent": totals["sent"], "followups_suppressed": totals["suppressed"],
            "delay_notices": totals["late_parcels"], "resent": totals["resent"]}


def late_parcels(rt: Runtime, now: datetime, log, limit: int = 5000) -> int:
    """`delay_notice` for each parcel still with the carrier after its promised day (one per parcel,
    the same key as a carrier-reported delay, so never both)."""
    from datetime import timedelta

    cand = late_parcel_candidates(rt.database_url, now - timedelta(days=1), limit)
    messages, decisions = [], []
    for p in cand["parcels"]:
        order = message_order(cand["snapshots"].get(p["order_id"]) or {},
                              cand["stages"].get(p["order_id"], p["stage"]))
        if order is None:
            continue
        snap = cand["snapshots"][p["order_id"]]
        method = ((snap.get("shipping_lines") or [{}])[0] or {}).get("code")
        parcel = Parcel(p["fulfillment_id"], p["order_id"], p["stage"], p["updated_at"], p["tracking_number"])
        ev = late_parcel_event(parcel, p["shipped_at"], method, order.country_code, rt.policy, now,
                               {"number": p["tracking_number"], "company": None, "url": None, "lines": p["lines"]})
        if ev is None:
            continue
        d = decide_message(ev, order, rt.policy, now)
        decisions.append(decision_row(rt, "communication", order.id, d.template or "none",
                                      ["promised delivery date passed", *d.reasons],
                                      "communication.promised_transit_days", event="delayed", ref=ev.ref,
                                      order_name=order.name))
        if d.send:
            messages.append({"order_id": order.id, "to": order.email, "template": d.template, "language": d.language,
                             "context": message_context(d.template, ev, order, rt.policy, now),
                             "effect_key": d.effect_key})
    if decisions:
        record_decisions(rt.database_url, quote(decisions))
    if messages:
        send_customer_messages(rt.database_url, quote(messages))
        log.info("%s parcels are past their promised delivery date: delay notices sent", len(messages))
    return len(messages)
