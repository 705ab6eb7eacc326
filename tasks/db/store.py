"""Operations on the operational store. Plain functions taking a database URL: no Prefect here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable

from sqlalchemy.exc import IntegrityError
from sqlalchemy import update
from sqlmodel import select

from domain.orders import OrderFacts, compare_snapshot
from tasks.db.engine import session
from tasks.db.models import AuditLog, Cursor, Decision, Effect, Order, WebhookDelivery, utcnow


def as_utc(ts: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; everything aftercart stores is UTC."""
    if ts is None:
        return None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


# ------------------------------------------------------------------ webhook inbox


@dataclass(frozen=True)
class InboxResult:
    id: int | None
    duplicate: bool


def add_delivery(url: str, **fields: Any) -> InboxResult:
    """Insert one delivery; a second delivery with the same (shop, webhook id) is a duplicate."""
    with session(url) as s:
        row = WebhookDelivery(**fields)
        s.add(row)
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            existing = s.exec(
                select(WebhookDelivery).where(
                    WebhookDelivery.shop == fields["shop"], WebhookDelivery.webhook_id == fields["webhook_id"]
                )
            ).first()
            return InboxResult(existing.id if existing else None, True)
        return InboxResult(row.id, False)


def set_delivery_status(url: str, delivery_id: int, status: str, error: str | None = None) -> None:
    with session(url) as s:
        row = s.get(WebhookDelivery, delivery_id)
        row.status = status
        row.error = error
        if status in ("processed", "stale"):
            row.processed_at = utcnow()
        s.add(row)
        s.commit()


def pending_deliveries(url: str, limit: int) -> list[WebhookDelivery]:
    with session(url) as s:
        q = select(WebhookDelivery).where(WebhookDelivery.status == "accepted").order_by(WebhookDelivery.id)
        return list(s.exec(q.limit(limit)).all())


def mark_processed(url: str, ids: Iterable[int]) -> int:
    ids = list(ids)
    if not ids:
        return 0
    now = utcnow()
    with session(url) as s:
        rows = s.exec(select(WebhookDelivery).where(WebhookDelivery.id.in_(ids))).all()
        for r in rows:
            r.status, r.processed_at = "processed", now
            s.add(r)
        s.commit()
        return len(rows)


# ------------------------------------------------------------------ orders


def upsert_order(url: str, shop: str, facts: OrderFacts, snapshot: dict[str, Any]) -> str:
    """Apply a newer snapshot; keep the stored one when the payload is older ("stale") or equal.

    The comparison is made inside one conditional UPDATE, so two deliveries racing each other
    can never leave the older snapshot in place.
    """
    ts = as_utc(facts.updated_at)
    values = dict(
        name=facts.name, email=facts.email, customer_locale=facts.customer_locale,
        country_code=facts.country_code, tags=facts.tags, stage=facts.stage, snapshot=snapshot,
        shopify_updated_at=ts, updated_at=utcnow(),
    )
    for _ in range(50):
        with session(url) as s:
            res = s.exec(
                update(Order)
                .where(Order.id == facts.id, Order.shopify_updated_at < ts)
                .values(version=Order.version + 1, **values)
            )
            if res.rowcount:
                s.commit()
                return "apply"
            row = s.get(Order, facts.id)
            if row is not None:
                s.rollback()
                verdict = compare_snapshot(as_utc(row.shopify_updated_at), ts)
                if verdict != "apply":
                    return verdict
                continue  # the row appeared (or moved) after our UPDATE looked: try again
            s.add(Order(id=facts.id, shop=shop, version=1, **values))
            try:
                s.commit()
                return "apply"
            except IntegrityError:  # a concurrent first insert of the same order: compare again
                s.rollback()
    raise RuntimeError(f"order {facts.id}: could not apply the snapshot after 50 attempts")


def get_order(url: str, order_id: int) -> Order | None:
    with session(url) as s:
        return s.get(Order, order_id)


def stages_of(url: str, order_ids: list[int]) -> dict[int, str]:
    if not order_ids:
        return {}
    with session(url) as s:
        return {o.id: o.stage for o in s.exec(select(Order).where(Order.id.in_(order_ids))).all()}


def stored_updated_at(url: str, order_ids: list[int]) -> dict[int, datetime]:
    if not order_ids:
        return {}
    with session(url) as s:
        rows = s.exec(select(Order.id, Order.shopify_updated_at).where(Order.id.in_(order_ids))).all()
        return {oid: as_utc(ts) for oid, ts in rows}


def set_stages(url: str, stages: dict[int, str]) -> int:
    with session(url) as s:
        rows = s.exec(select(Order).where(Order.id.in_(list(stages)))).all()
        for r in rows:
            r.stage = stages[r.id]
            s.add(r)
        s.commit()
        return len(rows)


# ------------------------------------------------------------------ decisions and audit


def record_decisions(url: str, decisions: Iterable[Decision]) -> int:
    decisions = list(decisions)
    with session(url) as s:
        s.add_all(decisions)
        s.commit()
    return len(decisions)


def audit(url: str, actor: str, action: str, subject: str, **detail: Any) -> None:
    with session(url) as s:
        s.add(AuditLog(actor=actor, action=action, subject=subject, detail=json.loads(json.dumps(detail, default=str))))
        s.commit()


# ------------------------------------------------------------------ cursors


def get_cursor(url: str, name: str) -> str | None:
    with session(url) as s:
        row = s.get(Cursor, name)
        return row.value if row else None


def set_cursor(url: str, name: str, value: str) -> None:
    with session(url) as s:
        row = s.get(Cursor, name) or Cursor(name=name, value=value)
        row.value, row.updated_at = value, utcnow()
        s.add(row)
        s.commit()


# ------------------------------------------------------------------ effects ledger


class EffectFailed(Exception):
    pass


def perform_effect(
    url: str,
    effect_key: str,
    kind: str,
    subject: str,
    request: dict[str, Any],
    call: Callable[[str], dict[str, Any]],
) -> dict[str, Any]:
    """Run a side effect at most once per `effect_key`.

    The ledger row (with its idempotency key) is written before the call. A confirmed effect
    returns its stored result without calling again; a pending or failed one is retried with the
    same idempotency key, so an API that honours the key (Shopify's `@idempotent`) never
    applies it twice even when the earlier reply was lost.
    """
    with session(url) as s:
        row = s.exec(select(Effect).where(Effect.effect_key == effect_key)).first()
        if row is None:
            row = Effect(effect_key=effect_key, kind=kind, subject=subject, idempotency_key=effect_key, request=request)
            s.add(row)
            try:
                s.commit()
            except IntegrityError:
                s.rollback()
                row = s.exec(select(Effect).where(Effect.effect_key == effect_key)).one()
        if row.status == "confirmed":
            return row.result or {}
        row.attempts += 1
        row.updated_at = utcnow()
        s.add(row)
        s.commit()
        key = row.idempotency_key
    try:
        result = call(key)
    except Exception as exc:
        with session(url) as s:
            row = s.exec(select(Effect).where(Effect.effect_key == effect_key)).one()
            row.status, row.last_error, row.updated_at = "failed", f"{type(exc).__name__}: {exc}"[:2000], utcnow()
            s.add(row)
            s.commit()
        raise
    with session(url) as s:
        row = s.exec(select(Effect).where(Effect.effect_key == effect_key)).one()
        row.status, row.result, row.last_error, row.updated_at = "confirmed", result, None, utcnow()
        s.add(row)
        s.commit()
    return result


# ------------------------------------------------------------------ approvals


def overdue_approvals(url: str, now: datetime) -> list:
    from tasks.db.models import Approval

    with session(url) as s:
        q = select(Approval).where(Approval.status == "pending", Approval.deadline <= as_utc(now))
        return list(s.exec(q.order_by(Approval.deadline)).all())


def apply_deadline_outcomes(url: str, outcomes: list[dict[str, Any]], policy_version: str, policy_hash: str) -> int:
    """Escalate or default each overdue approval, with an audit row and a decision row each."""
    from tasks.db.models import Approval

    n = 0
    with session(url) as s:
        for o in outcomes:
            a = s.get(Approval, o["id"])
            if a is None or a.status != "pending":
                continue  # decided meanwhile: a person's decision wins over the sweep
            before = a.role
            if o["action"] == "escalate":
                a.role, a.deadline, a.escalations = o["role"], o["deadline"], a.escalations + 1
            else:
                a.status, a.decision, a.decided_by, a.decided_at = "defaulted", o["decision"], "aftercart:deadline", utcnow()
            s.add(a)
            s.add(AuditLog(actor="aftercart:deadline", action=f"approval.{o['action']}", subject=f"approval:{a.id}",
                           detail={"from_role": before, "to_role": a.role, "reasons": list(o["reasons"])}))
            s.add(Decision(sop="approvals", subject=f"approval:{a.id}", outcome=o["action"], reasons=list(o["reasons"]),
                           rule=f"approvals.roles.{before}", policy_version=policy_version, policy_hash=policy_hash,
                           actor="aftercart:deadline", inputs={"kind": a.kind, "order_id": a.order_id}))
            n += 1
        s.commit()
    return n


# ------------------------------------------------------------------ metrics


def grouped_counts(url: str, since: datetime) -> dict[str, list[dict[str, Any]]]:
    """Counts for the daily report: inbox by topic and status, orders by stage, decisions, effects, approvals."""
    from sqlalchemy import func

    from tasks.db.models import Approval

    since = as_utc(since)
    with session(url) as s:
        def rows(*cols, model, where=None):
            q = select(*cols, func.count()).select_from(model)
            if where is not None:
                q = q.where(where)
            return s.exec(q.group_by(*cols).order_by(*cols)).all()

        return {
            "inbox": [{"topic": t, "status": st, "count": c} for t, st, c in rows(
                WebhookDelivery.topic, WebhookDelivery.status, model=WebhookDelivery,
                where=WebhookDelivery.received_at >= since)],
            "orders": [{"stage": st, "count": c} for st, c in rows(Order.stage, model=Order)],
            "decisions": [{"sop": sop, "outcome": o, "count": c} for sop, o, c in rows(
                Decision.sop, Decision.outcome, model=Decision, where=Decision.decided_at >= since)],
            "effects": [{"kind": k, "status": st, "count": c} for k, st, c in rows(
                Effect.kind, Effect.status, model=Effect, where=Effect.created_at >= since)],
            "approvals": [{"role": r, "status": st, "count": c} for r, st, c in rows(
                Approval.role, Approval.status, model=Approval)],
        }


def open_approval(url: str, approval) -> Any:
    """Insert the approval request once; a re-run of the flow gets the row it created before."""
    from tasks.db.models import Approval

    with session(url) as s:
        existing = s.get(Approval, approval.id)
        if existing is not None:
            return existing
        s.add(approval)
        s.add(AuditLog(actor="aftercart", action="approval.requested", subject=f"approval:{approval.id}",
                       detail={"kind": approval.kind, "order": approval.order_name, "role": approval.role,
                               "rule": approval.rule, "deadline": approval.deadline.isoformat()}))
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            return s.get(Approval, approval.id)
        return approval


def get_approval(url: str, approval_id: str) -> Any:
    from tasks.db.models import Approval

    with session(url) as s:
        return s.get(Approval, approval_id)


def list_approvals(url: str, status: str | None = "pending", role: str | None = None,
                   overdue_at: datetime | None = None) -> list:
    from tasks.db.models import Approval

    with session(url) as s:
        q = select(Approval)
        if status:
            q = q.where(Approval.status == status)
        if role:
            q = q.where(Approval.role == role)
        if overdue_at is not None:
            q = q.where(Approval.deadline <= as_utc(overdue_at))
        return list(s.exec(q.order_by(Approval.deadline)).all())


def set_approval_run(url: str, approval_id: str, flow_run_id: str) -> None:
    from tasks.db.models import Approval

    with session(url) as s:
        a = s.get(Approval, approval_id)
        if a.flow_run_id != flow_run_id:
            a.flow_run_id = flow_run_id
            s.add(a)
            s.commit()


def refuse_decision(url: str, approval_id: str, approver: str, decision: str, reasons: list[str],
                    channel: str) -> int:
    """Audit a refused decision; the request keeps waiting. Returns the refusals so far.

    Only a refusal of a resumed run ("resume") counts: the waiting run pauses again under a new
    key. One refused before any resume (the CLI checks first) leaves the run's wait as it is.
    """
    from tasks.db.models import Approval

    with session(url) as s:
        a = s.get(Approval, approval_id)
        if channel == "resume":
            a.refusals += 1
            s.add(a)
        s.add(AuditLog(actor=approver or "(anonymous)", action="approval.refused", subject=f"approval:{approval_id}",
                       detail={"decision": decision, "reasons": reasons, "channel": channel}))
        s.commit()
        return a.refusals


def decide_approval(url: str, approval_id: str, approver: str, decision: str, note: str | None,
                    address: dict | None, policy_version: str, policy_hash: str, channel: str) -> Any:
    """Record an accepted decision (status, who, when, note) with its audit and decision rows."""
    from tasks.db.models import Approval

    with session(url) as s:
        a = s.get(Approval, approval_id)
        if a.status != "pending":
            return a
        a.status = "rejected" if decision == "reject" else "approved"
        a.decision, a.decided_by, a.note, a.decided_at = decision, approver, note, utcnow()
        a.decided_address = address
        s.add(a)
        s.add(AuditLog(actor=approver, action="approval.decided", subject=f"approval:{approval_id}",
                       detail={"decision": decision, "note": note, "channel": channel}))
        s.add(Decision(sop="approvals", subject=f"approval:{approval_id}", outcome=decision,
                       reasons=[f"decided by {approver}"] + ([note] if note else []), rule=a.rule,
                       policy_version=policy_version, policy_hash=policy_hash, actor=approver,
                       inputs={"kind": a.kind, "order_id": a.order_id, "role": a.role, "channel": channel}))
        s.commit()
        return a


def record_effect_of_decision(url: str, approval_id: str, effect: dict[str, Any]) -> None:
    """Every decision is recorded with the effect it caused."""
    with session(url) as s:
        s.add(AuditLog(actor="aftercart", action="approval.effect", subject=f"approval:{approval_id}", detail=effect))
        s.commit()
