"""SOP 2's edit requests and the per-order lease that makes edits on one order run serially."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from tasks.db.engine import session
from tasks.db.models import AuditLog, EditRequest, OrderLock, utcnow
from tasks.db.store import as_utc


def open_request(url: str, request: EditRequest) -> EditRequest:
    """Insert the request once per run (a re-run of the same run after a suspend gets it back)."""
    with session(url) as s:
        if request.flow_run_id:
            existing = s.exec(select(EditRequest).where(EditRequest.flow_run_id == request.flow_run_id)).first()
            if existing is not None:
                return existing
        s.add(request)
        s.flush()
        s.add(AuditLog(actor=f"customer:{request.channel}", action="edit.requested", subject=f"order:{request.order_id}",
                       detail={"request": request.id, "kind": request.kind}))
        s.commit()
        s.refresh(request)
        return request


def update_request(url: str, request_id: int, decision=None, **fields: Any) -> EditRequest:
    """Set fields (a final status closes the request); a decision row is added once, with the rule."""
    with session(url) as s:
        row = s.get(EditRequest, request_id)
        if decision is not None and row.rule is None:
            s.add(decision)
        for k, v in fields.items():
            setattr(row, k, v)
        if row.status in ("applied", "denied", "refused") and row.closed_at is None:
            row.closed_at = utcnow()
            s.add(AuditLog(actor="aftercart", action=f"edit.{row.status}", subject=f"order:{row.order_id}",
                           detail={"request": row.id, "rule": row.rule, "error": row.error}))
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def others_waiting(url: str, order_id: int, request_id: int) -> bool:
    """Whether another edit request on the order still waits for an approver (and needs the hold)."""
    with session(url) as s:
        return s.exec(select(EditRequest).where(EditRequest.order_id == order_id, EditRequest.id != request_id,
                                                EditRequest.status == "waiting")).first() is not None


def get_request(url: str, request_id: int) -> EditRequest | None:
    with session(url) as s:
        return s.get(EditRequest, request_id)


def acquire_order(url: str, order_id: int, holder: str, lease_seconds: float = 60,
                  wait_seconds: float = 120) -> None:
    """Take the order's lease (waiting for another holder, taking over an expired lease)."""
    deadline = time.monotonic() + wait_seconds
    while True:
        now = utcnow()
        with session(url) as s:
            row = s.get(OrderLock, order_id)
            if row is None:
                s.add(OrderLock(order_id=order_id, holder=holder, expires_at=now + timedelta(seconds=lease_seconds)))
                try:
                    s.commit()
                    return
                except IntegrityError:
                    s.rollback()
            elif row.holder == holder or as_utc(row.expires_at) <= now:
                # conditional update: of two runs taking over an expired lease, one wins
                taken = s.exec(update(OrderLock).where(
                    OrderLock.order_id == order_id, OrderLock.holder == row.holder,
                    OrderLock.expires_at == row.expires_at).values(
                    holder=holder, expires_at=now + timedelta(seconds=lease_seconds)))
                s.commit()
                if taken.rowcount == 1:
                    return
        if time.monotonic() > deadline:
            raise TimeoutError(f"order {order_id} stayed locked by another run for {wait_seconds:g} s")
        time.sleep(0.1)


def release_order(url: str, order_id: int, holder: str) -> None:
    with session(url) as s:
        s.exec(delete(OrderLock).where(OrderLock.order_id == order_id, OrderLock.holder == holder))
        s.commit()


def requests_since(url: str, since) -> list[EditRequest]:
    with session(url) as s:
        return list(s.exec(select(EditRequest).where(EditRequest.requested_at >= as_utc(since))).all())


def edit_metrics(url: str, since) -> list[dict[str, Any]]:
    """SOP 2's figures: requests by kind and outcome, approval rate, time to resolution, share
    completed self-serve, downstream mistakes (edits the 3PL refused because it had packed)."""
    from tasks.db.models import Approval, Effect

    rows = requests_since(url, since)
    with session(url) as s:
        asked = {a.id.split(":")[2] for a in s.exec(select(Approval).where(Approval.kind == "order_edit")).all()}
        late = s.exec(select(Effect).where(Effect.kind == "3pl", Effect.effect_key.contains(":edit:"),
                                           Effect.status == "failed")).all()
    decided = [r for r in rows if r.status in ("applied", "denied", "waiting")]
    approvals = [r for r in rows if f"e{r.id}" in asked]
    applied = [r for r in rows if r.status == "applied"]
    hours = sorted((as_utc(r.closed_at) - as_utc(r.requested_at)).total_seconds() / 3600 for r in rows if r.closed_at)
    out = [{"metric": f"requests {k} {st}", "value": str(n)} for (k, st), n in sorted(
        {(r.kind, r.status): sum(1 for x in rows if (x.kind, x.status) == (r.kind, r.status)) for r in rows}.items())]
    return out + [
        {"metric": "approval rate", "value": f"{100 * len(approvals) / len(decided):.1f}%" if decided else "-"},
        {"metric": "time to resolution, median (h)", "value": f"{hours[len(hours) // 2]:.2f}" if hours else "-"},
        {"metric": "completed self-serve (of applied)",
         "value": f"{100 * sum(1 for r in applied if r.channel == 'self_serve' and f'e{r.id}' not in asked) / len(applied):.1f}%"
         if applied else "-"},
        {"metric": "downstream mistakes (3PL refused an edit after packing)", "value": str(len(late))},
    ]
