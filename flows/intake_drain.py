"""Drain the webhook inbox: every accepted delivery, in batches, in one run.

Routine in bulk: one run handles a whole burst (the intake announces pending work at most every
two seconds). Per-topic SOP handling joins here as each SOP lands; today the drain keeps each
order's stage current from fulfillment events and the 3PL's pushes, decides and sends the customer
messages the batch's events make (SOP 1, flows/customer_messages.py), judges every new order's
shipping address (SOP 4,
one decision per order, recorded with the policy), starts one `address-review #N` run per order
whose address needs the customer or a person (flows/address_validation.py), and marks deliveries
processed.
"""

from __future__ import annotations

import json
import time
from collections import Counter

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.utilities.annotations import quote  # big batches: Prefect need not walk every row

from config import clock
from domain.address import check_address
from domain.address_policy import address_outcome, carrier_of, review_key, with_verification
from domain.orders import stage_from_fulfillment_event, stage_from_warehouse_push
from flows.customer_messages import messages_for_batch
from flows.runtime import decision_row, runtime
from tasks.address_io import start_address_reviews, verify_addresses
from tasks.inbox import address_keys_judged, current_stages, load_pending, mark_processed, record_decisions, save_stages


def judge_new_orders(rt, rows: list[dict], stages: dict[int, str], verdicts: Counter, exceptions: list) -> int:
    """SOP 4 in bulk: one address decision per new order (orders/create, or fed by reconciliation),
    and again when an order we judged arrives (orders/updated, orders/edited) with another address."""
    created, updated = {}, {}
    for r in rows:
        payload = _parse(r["body"]) if r["order_id"] else None
        if not isinstance(payload, dict):
            continue
        if r["topic"] == "orders/create" or payload.get("source") == "reconciliation":
            created.setdefault(r["order_id"], payload)
        elif r["topic"] in ("orders/updated", "orders/edited"):
            updated[r["order_id"]] = payload  # the latest in the batch
    if not created and not updated:
        return 0
    judged = address_keys_judged(rt.database_url, sorted({*created, *updated}))
    todo = {oid: p for oid, p in created.items() if oid not in judged}
    todo.update({oid: p for oid, p in updated.items() if oid in judged and oid not in todo
                 and review_key(p.get("shipping_address")) not in judged[oid]})
    if not todo:
        return 0
    offline = {oid: check_address(p.get("shipping_address")) for oid, p in todo.items()}
    # the optional online verifier (off by default) sees the addresses that passed offline, in one batch
    passed = [oid for oid, v in offline.items() if v.verdict == "valid"]
    online = dict(zip(passed, verify_addresses([todo[oid].get("shipping_address") for oid in passed]))) if passed else {}
    decisions = []
    for oid, payload in todo.items():
        key = review_key(payload.get("shipping_address"))
        verdict = with_verification(offline[oid], online.get(oid))
        carrier = carrier_of((payload.get("shipping_lines") or [{}])[0], rt.policy)
        outcome = address_outcome(verdict, rt.policy, stages.get(oid, "unfulfilled"), carrier)
        verdicts[verdict.verdict] += 1
        if outcome.action != "accept":
            exceptions.append({"order": payload.get("name"), "order_id": oid, "verdict": verdict.verdict,
                               "reasons": ", ".join(verdict.reasons), "next": outcome.action, "key": key})
        decisions.append(decision_row(rt, "address", oid, verdict.verdict, [*verdict.reasons, *outcome.reasons],
                                      outcome.rule, normalized=verdict.normalized, suggestions=verdict.suggestions,
                                      action=outcome.action, order_name=payload.get("name"), key=key,
                                      verified_online=oid in online and online[oid] is not None))
    return record_decisions(rt.database_url, quote(decisions)) if decisions else 0


def start_reviews(exceptions: list[dict]):
    """Start one `address-review` run per exception, in the background (the drain goes on with the
    batch's messages and the next batch while the Prefect server creates the runs); returns the
    future, or None when the batch has no exception."""
    if not exceptions:
        return None
    return start_address_reviews.submit([{"order_id": e["order_id"], "order_name": e["order"], "key": e["key"]}
                                         for e in exceptions])


def reviews_started(pending: list, log, keep: int = 0) -> None:
    """Wait for all but the `keep` newest review starts; a start that failed is logged: the
    decisions are recorded and the deadline sweep starts those runs later."""
    while len(pending) > keep:
        future, count = pending.pop(0)
        future.wait()
        state = future.state
        if not state.is_completed():
            log.error("could not start %s address-review runs (is the address-review deployment served?); the "
                      "deadline sweep starts them later: %s", count, state.message)


def _parse(body: str):
    try:
        return json.loads(body)
    except ValueError:
        return None


def _run_name() -> str:
    return f"drain {clock.now():%Y-%m-%d %H:%M:%S}"


@flow(name="intake-drain", flow_run_name=_run_name)
def drain_inbox(batch_size: int = 500, max_batches: int = 200, linger_seconds: float = 0.0,
                max_seconds: float = 600.0) -> dict[str, int]:
    """Drain in batches until the inbox has been empty for `linger_seconds`, or `max_seconds` have
    passed (under steady traffic a run ends there and the next announcement starts a fresh one, so
    ops see runs finish and their artifacts appear)."""
    log = get_run_logger()
    rt = runtime()
    topics: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    exceptions: list[dict] = []
    messages: Counter[str] = Counter()
    stage_moves = 0
    reviews: list = []  # (future, runs) of review starts in flight
    progress = create_progress_artifact(progress=0.0, description="deliveries drained (batches)")
    idle_since = started = time.monotonic()
    for n in range(max_batches):
        if time.monotonic() - started >= max_seconds:
            log.info("ran %.0f s: leaving the rest to the next drain run", time.monotonic() - started)
            break
        rows = load_pending(rt.database_url, batch_size)
        if not rows:
            if time.monotonic() - idle_since >= linger_seconds:
                break
            time.sleep(0.5)
            continue
        idle_since = time.monotonic()
        order_ids = sorted({r["order_id"] for r in rows if r["order_id"]})
        stages = current_stages(rt.database_url, order_ids)
        moves: dict[int, str] = {}
        for r in rows:
            topics[r["topic"]] += 1
            if r["order_id"] is None:
                continue
            current = moves.get(r["order_id"], stages.get(r["order_id"]))
            payload = _parse(r["body"])
            new = stage_from_fulfillment_event(r["topic"], payload, current) or stage_from_warehouse_push(
                r["topic"], payload, current)
            if new:
                moves[r["order_id"]] = new
        stage_moves += save_stages(rt.database_url, moves)
        fresh = len(exceptions)
        judge_new_orders(rt, rows, stages, verdicts, exceptions)
        if future := start_reviews(exceptions[fresh:]):  # this batch's exceptions start now, while it goes on
            reviews.append((future, len(exceptions) - fresh))
        reviews_started(reviews, log, keep=1)  # at most one batch's starts behind
        messages.update(messages_for_batch(rt, rows, {**stages, **moves}, log))  # SOP 1, the batch at once
        mark_processed(rt.database_url, [r["id"] for r in rows])
        update_progress_artifact(progress, progress=min(100.0, 100.0 * (n + 1) / max_batches))
        log.info("batch %s: %s deliveries, %s stage changes", n + 1, len(rows), len(moves))
    reviews_started(reviews, log)
    update_progress_artifact(progress, progress=100.0)
    total = sum(topics.values())
    if total:
        create_table_artifact(
            key="intake-drain",
            table=[{"topic": t, "deliveries": c} for t, c in sorted(topics.items())],
            description=f"{total} deliveries processed, {stage_moves} stage changes",
        )
    if verdicts:
        create_table_artifact(
            key="address-verdicts",
            table=[{k: e[k] for k in ("order", "verdict", "reasons", "next")} for e in exceptions]
            or [{"order": "-", "verdict": "-", "reasons": "-", "next": "all addresses valid"}],
            description=f"address verdicts: {dict(verdicts)} (policy {rt.policy.ref}); each order listed has its "
                        "own address-review run",
        )
    if messages:
        create_table_artifact(
            key="customer-messages-sent",
            table=[{"template": t, "messages": n} for t, n in sorted(messages.items()) if t != "not_sent"]
            + [{"template": "(decided: none)", "messages": messages["not_sent"]}],
            description="customer messages this drain decided (sent through the effects ledger, each once)",
        )
    log.info("drained %s deliveries (%s stage changes, address verdicts %s, messages %s)", total, stage_moves,
             dict(verdicts), dict(messages))
    return {"processed": total, "stage_changes": stage_moves, "addresses_judged": sum(verdicts.values()),
            "messages": sum(n for t, n in messages.items() if t != "not_sent")}
