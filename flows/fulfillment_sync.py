"""SOP 7: fulfillment coordination with the 3PL, as one scheduled run (every few minutes).

1. Release: unfulfilled orders past their edit window are read from Shopify in batches (holds,
   fulfillment orders, tags) and decided by `domain.fulfillment.decide_release`; the ones with no
   hold left go to the 3PL, one ledger effect each (`3pl:release:<order>`), only their OPEN
   fulfillment orders (a preorder's scheduled part waits: a split shipment). `ac:manual`,
   wholesale and marketplace orders are routed to a person (policy `fulfillment.manual_routing`).
   The 3PL's push (`fulfillment_started` goes out then) reaches the intake; step 2 catches it if not.
2. Sync: the 3PL's orders changed since the cursor; any event of theirs the inbox lacks (a lost
   push) is added to the inbox under the push's own id, so the drain keeps stages (the 3PL owns
   released..shipped, the carrier after) and messages current, once.
3. One signal everywhere: for every order at the warehouse whose signals may have changed, the
   3PL flags and the order's helpdesk tickets are set to exactly the Shopify tags' signals.

Routine in bulk: a bounded number of task runs per batch, never one per order.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from config import clock
from domain.fulfillment import (FulfillmentOrderFacts, ReleaseFacts, decide_release, mirror_signals, owner_word,
                                signals_of)
from domain.orders import parse_timestamp
from flows.runtime import Runtime, decision_row, runtime
from tasks.fulfillment_io import (apply_signal_plans, helpdesk_tickets, move_mirror_cursor, orders_to_mirror,
                                  our_stages, pull_warehouse, read_for_release, record_owner_word, release_candidates,
                                  release_to_3pl, warehouse_flags)
from tasks.inbox import record_decisions


def _facts(oid: int, o: dict[str, Any]) -> ReleaseFacts:
    return ReleaseFacts(
        order_id=oid, name=o["name"], created_at=parse_timestamp(o["created_at"]) or clock.now(),
        tags=tuple(o["tags"]), order_type=o["order_type"], cancelled=o["cancelled"], at_warehouse=False,
        fulfillment_orders=tuple(FulfillmentOrderFacts(fo["id"], fo["status"], tuple(fo["holds"]),
                                                       tuple((s, int(n)) for s, n in fo["lines"]))
                                 for fo in o["fulfillment_orders"]))


def release_step(rt: Runtime, now: datetime, chunk: int, max_orders: int, log) -> tuple[Counter, list[dict], float]:
    window = timedelta(minutes=rt.policy.order_edit.window_minutes)
    ids = release_candidates(rt.database_url, now - window, max_orders)
    actions: Counter = Counter()
    rows: list[dict] = []
    cost = 0.0
    for i in range(0, len(ids), chunk):
        part = ids[i:i + chunk]
        read = read_for_release(part, return_state=True)
        if read.is_failed():  # Shopify is down or throttling hard: these wait for the next run
            log.error("could not read %s orders from Shopify (%s); the next sync releases them", len(part),
                      read.message)
            actions["unread"] += len(part)
            continue
        got = read.result()
        cost += got["cost_points"]
        decisions, releases = [], []
        for oid in part:
            o = got["orders"].get(oid)
            if o is None:
                actions["missing"] += 1
                continue
            d = decide_release(_facts(oid, o), rt.policy, now)
            actions[d.action] += 1
            decisions.append(decision_row(rt, "fulfillment", oid, d.action, d.reasons, "fulfillment.release",
                                          order_name=o["name"], fulfillment_orders=[f.id for f in d.release]))
            if d.action == "release":
                releases.append({"order_id": oid, "lines": d.lines, "address": o["shipping_address"],
                                 "flags": sorted(signals_of(o["tags"]))})
            if d.action in ("person", "wait") and len(rows) < 200:
                rows.append({"order": o["name"], "decision": d.action, "why": "; ".join(d.reasons)})
        record_decisions(rt.database_url, decisions)
        if releases:
            sent = release_to_3pl(rt.database_url, releases, return_state=True)
            if sent.is_failed():
                log.error("the 3PL took none of %s releases (%s); the next sync sends them", len(releases), sent.message)
                actions["release_failed"] += len(releases)
                continue
            out = sent.result()
            actions["released"] += len(out["released"])
            actions["release_failed"] += len(out["failed"])
            for f in out["failed"][:20]:
                log.warning("order %s: the 3PL refused the release: %s", f["order_id"], f["error"])
    return actions, rows, cost


def mirror_step(rt: Runtime, pulled: list[dict], log) -> Counter:
    counts: Counter = Counter()
    flags_now = {v["order_id"]: v["flags"] for v in pulled}
    tickets = helpdesk_tickets(return_state=True)
    by_order: dict[str, list] = {}
    if tickets.is_failed():
        log.warning("the helpdesk did not answer (%s): tickets are mirrored next time", tickets.message)
    else:
        for t in tickets.result():
            by_order.setdefault(t["order"], []).append((t["id"], t.get("tags") or []))
    # orders with tickets are mirrored too (a ticket opened after the signal was set)
    todo = orders_to_mirror(rt.database_url, list(flags_now), sorted(by_order))
    released = set(todo["released"])
    orders = {o["id"]: o for o in todo["orders"]}
    at_3pl = [oid for oid in orders if oid in flags_now or oid in released or orders[oid]["stage"] in
              ("released", "picking", "packed", "label_created")]
    missing = [oid for oid in at_3pl if oid not in flags_now]
    if missing:
        flags_now.update(warehouse_flags(missing))
    plans = []
    for oid, o in orders.items():
        plan = mirror_signals(oid, o["tags"], flags_now.get(oid), by_order.get(o["name"], []))
        if not plan.empty:
            plans.append({"order_id": oid, "signals": list(plan.signals), "flags_add": list(plan.flags_add),
                          "flags_remove": list(plan.flags_remove),
                          "tickets": [[tid, list(a), list(r)] for tid, a, r in plan.tickets]})
    if plans:
        counts.update(apply_signal_plans(rt.database_url, plans))
    counts["checked"] = len(orders)
    move_mirror_cursor(rt.database_url, todo["cursor"])
    return counts


def owner_step(rt: Runtime, views: list[dict]) -> int:
    """Where our stage and the 3PL's disagree while it owns the order, its word is recorded."""
    if not views:
        return 0
    ours = our_stages(rt.database_url, [v["order_id"] for v in views])
    changes = []
    for v in views:
        if v["order_id"] not in ours:
            continue
        stage, why = owner_word(ours[v["order_id"]], v["status"], rt.policy)
        if stage is not None:
            changes.append({"order_id": v["order_id"], "ours": ours[v["order_id"]], "theirs": v["status"],
                            "stage": stage, "why": why})
    return record_owner_word(rt.database_url, changes) if changes else 0


def _run_name() -> str:
    return f"fulfillment-sync {clock.now():%Y-%m-%d %H:%M}"


@flow(name="fulfillment-sync", flow_run_name=_run_name)
def fulfillment_sync(now: datetime | None = None, chunk: int = 250, max_orders: int = 20000) -> dict[str, Any]:
    log = get_run_logger()
    rt = runtime()
    now = clock.utc(now)
    actions, rows, cost = release_step(rt, now, chunk, max_orders, log)
    pulled = pull_warehouse(rt.database_url, return_state=True)
    if pulled.is_failed():
        log.error("could not read the 3PL's orders (%s): the stages catch up on the next sync", pulled.message)
        views, missed = [], 0
    else:
        views, missed = pulled.result()["views"], pulled.result()["missed_events"]
    reconciled = owner_step(rt, views)
    mirror = mirror_step(rt, views, log)
    create_table_artifact(key="fulfillment-sync", table=rows or [{"order": "-", "decision": "-", "why": "nothing waits"}],
                          description=f"release: {dict(actions)}; 3PL orders changed: {len(views)} ({missed} events the "
                                      f"pushes had not brought, {reconciled} stages set to the owner's word); signals mirrored: {dict(mirror)}; Shopify cost "
                                      f"{cost:.0f} points")
    log.info("released %s (%s); 3PL changes %s, missed pushes caught %s; signals %s", actions["released"],
             dict(actions), len(views), missed, dict(mirror))
    return {"released": actions["released"], "decisions": dict(actions), "warehouse_changes": len(views),
            "reconciled": reconciled,
            "missed_events": missed, "signals": dict(mirror), "cost_points": cost}
