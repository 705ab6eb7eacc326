"""Operations on the operational store (the effects ledger is in tasks/db/ledger.py). Plain functions
taking a database URL: no Prefect here."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

from sqlalchemy.exc import IntegrityError
from sqlalchemy import bindparam, case, insert, update
from sqlmodel import select

from domain.orders import OrderFacts, compare_snapshot, stages_kept_over
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


def write_deliveries(url: str, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Store a group of deliveries in one transaction (one commit: one fsync for the group).

    Each job: {"fields": WebhookDelivery fields, "shop", "facts": OrderFacts | None, "payload"}.
    Returns per job {"id", "duplicate"} and, for order snapshots, "verdict" (apply | same | stale);
    a snapshot that is not newer marks its delivery stale or processed, as `upsert_order` does.
    If the group collides with another process's insert, each job is stored on its own instead."""
    try:
        return _write_group(url, jobs)
    except (IntegrityError, _GroupRaced):
        out = []
        for job in jobs:
            res = add_delivery(url, **job["fields"])
            item = {"id": res.id, "duplicate": res.duplicate}
            if not res.duplicate and job.get("facts") is not None:
                item["verdict"] = upsert_order(url, job["shop"], job["facts"], job["payload"])
                if item["verdict"] != "apply":
                    set_delivery_status(url, res.id, "stale" if item["verdict"] == "stale" else "processed",
                                        error=f"{item['verdict']}: stored order is as new or newer")
            out.append(item)
        return out


class _GroupRaced(Exception):
    """Another writer moved one of the group's orders between our read and our write."""


def _orders_read(s, ids: list[int]) -> dict[int, tuple[datetime, str]]:
    """Each stored order's snapshot time and stage."""
    if not ids:
        return {}
    return {oid: (as_utc(ts), stage) for oid, ts, stage in s.exec(
        select(Order.id, Order.shopify_updated_at, Order.stage).where(Order.id.in_(ids))).all()}


def _write_group(url: str, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The group in a handful of statements: the inbox rows in one insert, the orders read in one
    select, each order's newest snapshot of the group applied once (new orders in one insert, the
    others by one conditional update each). The update's WHERE names the snapshot time and stage
    that were read, so a writer that got in between makes the group fall back to one job at a time."""
    out: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], WebhookDelivery] = {}
    with session(url) as s:
        by_shop: dict[str, set[str]] = {}
        for j in jobs:
            by_shop.setdefault(j["fields"]["shop"], set()).add(j["fields"]["webhook_id"])
        stored = {(shop, wid): rid for shop, ids in by_shop.items() for rid, wid in s.exec(
            select(WebhookDelivery.id, WebhookDelivery.webhook_id).where(
                WebhookDelivery.shop == shop, WebhookDelivery.webhook_id.in_(sorted(ids)))).all()}
        rows: list[tuple[dict[str, Any], WebhookDelivery | None]] = []
        for job in jobs:
            key = (job["fields"]["shop"], job["fields"]["webhook_id"])
            if key in stored or key in seen:
                rows.append(({"duplicate": True, "key": key}, None))
                continue
            row = WebhookDelivery(**job["fields"])
            s.add(row)
            seen[key] = row
            rows.append(({"duplicate": False}, row))
        s.flush()  # the inbox rows in one statement; on SQLite this also takes the write lock
        # orders: each job's verdict against the stored snapshot and the group's earlier ones
        ids = sorted({job["facts"].id for job, (item, row) in zip(jobs, rows) if row is not None
                      and job.get("facts") is not None})
        current = _orders_read(s, ids)
        read = dict(current)
        newest: dict[int, dict[str, Any]] = {}
        for job, (item, row) in zip(jobs, rows):
            facts = job.get("facts")
            if row is None or facts is None:
                continue
            ts = as_utc(facts.updated_at)
            verdict = compare_snapshot(current.get(facts.id, (None, None))[0], ts)
            item["verdict"] = verdict
            if verdict == "apply":
                current[facts.id] = (ts, facts.stage)
                newest[facts.id] = job
            else:
                row.status = "stale" if verdict == "stale" else "processed"
                row.error, row.processed_at = f"{verdict}: stored order is as new or newer", utcnow()
        now = utcnow()
        inserts, updates = [], []
        for oid, job in newest.items():
            facts = job["facts"]
            values = dict(name=facts.name, email=facts.email, customer_locale=facts.customer_locale,
                          country_code=facts.country_code, tags=facts.tags, snapshot=job["payload"],
                          shopify_updated_at=as_utc(facts.updated_at), updated_at=now)
            if oid not in read:
                inserts.append(dict(values, id=oid, shop=job["shop"], version=1, stage=facts.stage, created_at=now))
            else:
                old_ts, old_stage = read[oid]
                stage = old_stage if old_stage in stages_kept_over(facts.stage) else facts.stage
                updates.append(dict(values, b_id=oid, b_old_ts=old_ts, b_old_stage=old_stage, stage=stage))
        if inserts:
            s.execute(insert(Order), inserts)
        t = Order.__table__
        stmt = (update(t).where(t.c.id == bindparam("b_id"), t.c.shopify_updated_at == bindparam("b_old_ts"),
                                t.c.stage == bindparam("b_old_stage")).values(version=t.c.version + 1))
        conn = s.connection()
        if updates and conn.dialect.supports_sane_multi_rowcount:
            if conn.execute(stmt, updates).rowcount != len(updates):
                raise _GroupRaced
        else:
            for u in updates:
                if conn.execute(stmt, u).rowcount != 1:
                    raise _GroupRaced
        s.commit()
        for item, row in rows:
            if row is not None:
                item["id"] = row.id
            else:
                key = item.pop("key")
                item["id"] = stored.get(key) or seen[key].id
            out.append(item)
    return out


def _upsert_in(s, shop: str, facts: OrderFacts, snapshot: dict[str, Any]) -> str:
    """`upsert_order`'s work inside the caller's transaction (its own, or the intake's group).
    A first insert that races another surfaces as IntegrityError at commit."""
    ts = as_utc(facts.updated_at)
    values = dict(name=facts.name, email=facts.email, customer_locale=facts.customer_locale,
                  country_code=facts.country_code, tags=facts.tags, snapshot=snapshot,
                  shopify_updated_at=ts, updated_at=utcnow())
    kept = stages_kept_over(facts.stage)  # what the 3PL and carrier told us is not undone by Shopify's word
    stage = case((Order.stage.in_(kept), Order.stage), else_=facts.stage) if kept else facts.stage
    s.flush()
    for _ in range(50):
        res = s.exec(update(Order).where(Order.id == facts.id, Order.shopify_updated_at < ts)
                     .values(version=Order.version + 1, stage=stage, **values)
                     .execution_options(synchronize_session=False))
        if res.rowcount:
            return "apply"
        current = s.exec(select(Order.shopify_updated_at).where(Order.id == facts.id)).first()
        if current is None:
            s.add(Order(id=facts.id, shop=shop, version=1, stage=facts.stage, **values))
            return "apply"
        verdict = compare_snapshot(as_utc(current), ts)
        if verdict != "apply":
            return verdict
        # the row moved after our UPDATE looked: try again
    raise RuntimeError(f"order {facts.id}: could not apply the snapshot after 50 attempts")


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
    with session(url) as s:
        n = s.exec(update(WebhookDelivery).where(WebhookDelivery.id.in_(ids))
                   .values(status="processed", processed_at=utcnow()).execution_options(synchronize_session=False))
        s.commit()
        return n.rowcount


# ------------------------------------------------------------------ orders


def upsert_order(url: str, shop: str, facts: OrderFacts, snapshot: dict[str, Any]) -> str:
    """Apply a newer snapshot; keep the stored one when the payload is older ("stale") or equal.

    The comparison is made inside one conditional UPDATE, so two deliveries racing each other
    can never leave the older snapshot in place.
    """
    for _ in range(50):
        with session(url) as s:
            verdict = _upsert_in(s, shop, facts, snapshot)
            try:
                s.commit()
                return verdict
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


def address_keys_judged(url: str, order_ids: list[int]) -> dict[int, set[str]]:
    """For each order with SOP 4 decisions: the keys of the addresses judged so far (an address
    edited afterwards has a key not in the set)."""
    if not order_ids:
        return {}
    out: dict[int, set[str]] = {}
    with session(url) as s:
        rows = s.exec(select(Decision.subject, Decision.inputs).where(
            Decision.sop == "address", Decision.subject.in_([f"order:{i}" for i in order_ids]))).all()
    for subject, inputs in rows:
        keys = out.setdefault(int(subject.split(":", 1)[1]), set())
        inputs = inputs or {}
        if inputs.get("key"):
            keys.add(inputs["key"])
        if str(inputs.get("review") or "").count(":") == 2:
            keys.add(inputs["review"].rsplit(":", 1)[1])
    return out
