"""SOP 7's reads and writes on the store, a batch at a time."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import select

from tasks.db.engine import session
from tasks.db.models import Effect, Order
from tasks.db.store import add_delivery, as_utc

RELEASE_KEY = "3pl:release:{}"


def release_candidates(url: str, created_before: datetime, limit: int) -> list[int]:
    """Unfulfilled orders placed before `created_before` that we have not released yet."""
    with session(url) as s:
        ids = list(s.exec(select(Order.id).where(Order.stage == "unfulfilled", Order.created_at <= created_before)
                          .order_by(Order.id).limit(limit)).all())
        if not ids:
            return []
        done = set(s.exec(select(Effect.effect_key).where(
            Effect.effect_key.in_([RELEASE_KEY.format(i) for i in ids]), Effect.status == "confirmed")).all())
    return [i for i in ids if RELEASE_KEY.format(i) not in done]


def released(url: str, order_ids: list[int]) -> set[int]:
    with session(url) as s:
        keys = set(s.exec(select(Effect.effect_key).where(
            Effect.effect_key.in_([RELEASE_KEY.format(i) for i in order_ids]), Effect.status == "confirmed")).all())
    return {i for i in order_ids if RELEASE_KEY.format(i) in keys}


def _order_rows(*where, order_by=None, limit: int | None = None) -> Any:
    q = select(Order.id, Order.name, Order.tags, Order.stage, Order.updated_at).where(*where)
    return q.order_by(order_by).limit(limit) if order_by is not None else q


def _as_dicts(rows) -> list[dict[str, Any]]:
    return [{"id": r[0], "name": r[1], "tags": list(r[2] or []), "stage": r[3], "updated_at": as_utc(r[4])}
            for r in rows]


def orders_changed_since(url: str, since: datetime | None, limit: int) -> list[dict[str, Any]]:
    """Orders whose snapshot changed since `since` (their tags may carry new signals)."""
    with session(url) as s:
        where = [Order.updated_at > since] if since is not None else []
        return _as_dicts(s.exec(_order_rows(*where, order_by=Order.updated_at, limit=limit)).all())


def orders_by_ids(url: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    with session(url) as s:
        return {o["id"]: o for o in _as_dicts(s.exec(_order_rows(Order.id.in_(ids))).all())}


def orders_by_names(url: str, names: list[str]) -> dict[str, dict[str, Any]]:
    with session(url) as s:
        return {o["name"]: o for o in _as_dicts(s.exec(_order_rows(Order.name.in_(names))).all())}


def record_warehouse_events(url: str, views: list[dict[str, Any]]) -> int:
    """Each event in the 3PL's history we have not received as a push goes into the inbox (same id
    as its push, so a push that did arrive makes this a duplicate): the drain handles both alike."""
    new = 0
    for w in views:
        for h in w.get("history") or []:
            if not h.get("event_id"):
                continue
            body = {"event": h["what"], "event_id": h["event_id"], "source": "sync",
                    "order": {"order_id": w["order_id"], "name": w.get("name"), "status": h.get("status"),
                              "version": h.get("version"), "updated_at": h.get("at")}}
            res = add_delivery(url, shop="3pl", webhook_id=f"3pl:{h['event_id']}", topic=f"3pl/{h['what']}",
                               status="accepted", order_id=w["order_id"], body=json.dumps(body))
            new += 0 if res.duplicate else 1
    return new


def fulfillment_metrics(url: str, since: datetime) -> list[dict[str, Any]]:
    """SOP 7's figures over the edits applied and the approvals decided since `since`:
    - edited orders held before pick: the change was applied before the warehouse started picking;
    - stock discrepancy after changes: applied edits whose stock re-check held the order (`ac:hold:inventory`);
    - fulfillment delays caused by changes: edits applied after picking started (the pick restarts);
    - exceptions resolved without escalation: decided approvals that never went up a role;
    - time to sync an approved change to every system (p50/p95): from the request (or the approval)
      to the last of its Shopify and 3PL effects confirmed."""
    from tasks.db.models import Approval, EditRequest

    since = as_utc(since)
    with session(url) as s:
        applied = s.exec(select(EditRequest).where(EditRequest.status == "applied",
                                                   EditRequest.requested_at >= since)).all()
        keys = [f"order:{r.order_id}:edit:{r.id}" for r in applied]
        effects = s.exec(select(Effect).where(Effect.status == "confirmed", Effect.effect_key.like("order:%:edit:%"))
                         ).all() if keys else []
        approvals = s.exec(select(Approval).where(Approval.decided_at.is_not(None), Approval.decided_at >= since)).all()
    by_req: dict[str, list[Effect]] = {}
    for e in effects:
        prefix = ":".join(e.effect_key.split(":")[:4])
        by_req.setdefault(prefix, []).append(e)
    decided_at = {a.id.split(":")[2]: as_utc(a.decided_at) for a in approvals if a.kind == "order_edit"
                  and a.id.count(":") >= 2}
    before_pick = sum(1 for r in applied if r.stage in ("unfulfilled", "released"))
    after_pick = sum(1 for r in applied if r.stage in ("picking", "packed"))
    short = sum(1 for k in keys if any(":hold:ac:hold:inventory" in e.effect_key for e in by_req.get(k, [])))
    syncs = []
    for r, k in zip(applied, keys):
        done = [as_utc(e.updated_at) for e in by_req.get(k, []) if e.kind in ("edit", "3pl")]
        if done:
            start = decided_at.get(f"e{r.id}") or as_utc(r.requested_at)
            syncs.append(max(0.0, (max(done) - start).total_seconds()))
    syncs.sort()
    unescalated = sum(1 for a in approvals if a.escalations == 0)

    def pct(n: int, d: int) -> str:
        return f"{100 * n / d:.1f}% ({n}/{d})" if d else "-"

    def q(p: float) -> str:
        return f"{syncs[min(len(syncs) - 1, int(p * len(syncs)))]:.1f}" if syncs else "-"

    return [
        {"metric": "edited orders held before pick", "value": pct(before_pick, len(applied))},
        {"metric": "stock discrepancy after changes", "value": pct(short, len(applied))},
        {"metric": "fulfillment delays caused by changes (edits after picking started)", "value": str(after_pick)},
        {"metric": "exceptions resolved without escalation", "value": pct(unescalated, len(approvals))},
        {"metric": "time to sync an approved change to every system, p50 (s)", "value": q(0.5)},
        {"metric": "time to sync an approved change to every system, p95 (s)", "value": q(0.95)},
    ]


def reconcile_stages(url: str, changes: list[dict[str, Any]]) -> int:
    """Record the owner's word where it disagrees with ours: the stage and an audit row each."""
    from tasks.db.models import AuditLog

    if not changes:
        return 0
    with session(url) as s:
        rows = {o.id: o for o in s.exec(select(Order).where(Order.id.in_([c["order_id"] for c in changes]))).all()}
        for c in changes:
            o = rows.get(c["order_id"])
            if o is None or o.stage != c["ours"]:  # moved meanwhile: the next sync looks again
                continue
            o.stage = c["stage"]
            s.add(o)
            s.add(AuditLog(actor="aftercart", action="stage.reconciled", subject=f"order:{o.id}",
                           detail={"ours": c["ours"], "theirs": c["theirs"], "recorded": c["stage"], "why": c["why"]}))
        s.commit()
    return len(changes)

