"""SOP 3's cancellation requests: open (or join the open one), close, report."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from tasks.db.approval_store import effect_audit
from tasks.db.engine import session
from tasks.db.models import AuditLog, CancelRequest, utcnow
from tasks.db.store import as_utc


def open_or_join(url: str, request: CancelRequest,
                 owner_gone: Callable[[str | None], bool] = lambda run_id: False) -> tuple[CancelRequest, bool]:
    """Open a request, or join the order's open one (returns it and True). Two concurrent
    requests race on the unique open key: the loser joins the winner. The run that opened it
    (a re-run after a suspend) gets it back; so does a new run when the owner is gone (crashed)."""
    for _ in range(5):
        with session(url) as s:
            existing = s.exec(select(CancelRequest).where(CancelRequest.open_key == request.order_id)).first()
            if existing is not None and (existing.flow_run_id == request.flow_run_id
                                         or owner_gone(existing.flow_run_id)):
                if existing.flow_run_id != request.flow_run_id:
                    s.add(AuditLog(actor="aftercart", action="cancel.request_taken_over",
                                   subject=f"order:{request.order_id}",
                                   detail={"request": existing.id, "from_run": existing.flow_run_id,
                                           "to_run": request.flow_run_id}))
                    existing.flow_run_id = request.flow_run_id
                    s.add(existing)
                    s.commit()
                    s.refresh(existing)
                return existing, False
            if existing is not None:  # recorded as its own row (channel and reason kept), joined to the open one
                dup = CancelRequest(**{**request.model_dump(exclude={"id"}), "status": "joined", "open_key": None,
                                       "joined_to": existing.id, "closed_at": utcnow()})
                s.add(dup)
                s.add(AuditLog(actor=f"customer:{request.channel}", action="cancel.request_joined",
                               subject=f"order:{request.order_id}", detail={"request": existing.id,
                                                                            "reason": request.reason}))
                s.commit()
                s.refresh(existing)
                return existing, True
            row = CancelRequest(**{**request.model_dump(exclude={"id"}), "open_key": request.order_id})
            s.add(row)
            try:
                s.flush()
                s.add(AuditLog(actor=f"customer:{request.channel}", action="cancel.requested",
                               subject=f"order:{request.order_id}", detail={"request": row.id,
                                                                            "reason": request.reason}))
                s.commit()
            except IntegrityError:
                s.rollback()
                continue
            s.refresh(row)
            return row, False
    raise RuntimeError(f"could not open or join a cancellation request for order {request.order_id}")


def record_refused(url: str, request: CancelRequest, error: str) -> CancelRequest:
    """A request that cannot be served (unknown order, already cancelled, bad amount): recorded, closed."""
    with session(url) as s:
        row = CancelRequest(**{**request.model_dump(exclude={"id"}), "status": "refused", "error": error,
                               "open_key": None, "closed_at": utcnow()})
        s.add(row)
        s.flush()
        s.add(AuditLog(actor=f"customer:{request.channel}", action="cancel.refused",
                       subject=f"order:{request.order_id}", detail={"request": row.id, "error": error}))
        s.commit()
        s.refresh(row)
        return row


def update_request(url: str, request_id: int, approval_effect: tuple[str, dict[str, Any]] | None = None,
                   **fields: Any) -> CancelRequest:
    """Set fields; a final status (applied, denied, refused) closes the request. `approval_effect`
    (an approval's id and what its decision caused) is recorded in the same write."""
    with session(url) as s:
        if approval_effect:
            s.add(effect_audit(*approval_effect))
        row = s.get(CancelRequest, request_id)
        for k, v in fields.items():
            setattr(row, k, v)
        if row.status in ("applied", "denied", "refused") and row.open_key is not None:
            row.open_key, row.closed_at = None, utcnow()
            s.add(AuditLog(actor="aftercart", action=f"cancel.{row.status}", subject=f"order:{row.order_id}",
                           detail={"request": row.id, "rule": row.rule, "refunded": row.refunded}))
        s.add(row)
        s.commit()
        s.refresh(row)
        return row


def decide_request(url: str, request_id: int, decision, **fields: Any) -> CancelRequest:
    """Record the policy's decision on a request once (a re-run finds it decided) and set fields."""
    with session(url) as s:
        row = s.get(CancelRequest, request_id)
        if row.rule is None:
            s.add(decision)
            for k, v in fields.items():
                setattr(row, k, v)
            s.add(row)
            s.commit()
            s.refresh(row)
        return row


def joined_requests(url: str, request_id: int) -> list[CancelRequest]:
    with session(url) as s:
        return list(s.exec(select(CancelRequest).where(CancelRequest.joined_to == request_id)).all())


def get_request(url: str, request_id: int) -> CancelRequest | None:
    with session(url) as s:
        return s.get(CancelRequest, request_id)


def requests_between(url: str, start: datetime, end: datetime) -> list[CancelRequest]:
    with session(url) as s:
        return list(s.exec(select(CancelRequest).where(CancelRequest.requested_at >= as_utc(start),
                                                       CancelRequest.requested_at < as_utc(end))).all())


def cancellation_report(url: str, start: datetime, end: datetime) -> dict[str, list[dict[str, Any]]]:
    """The monthly reasons report: requests by reason, channel and outcome; approval consistency
    (the same rule should get the same answer); refund completion (applied requests whose refund
    is confirmed in the effects ledger)."""
    from tasks.db.models import Approval, Effect

    rows = requests_between(url, start, end)
    with session(url) as s:
        approvals = {a.id: a for a in s.exec(select(Approval).where(Approval.kind == "cancellation")).all()}
        refunds = {e.effect_key.rsplit(":", 1)[0] for e in s.exec(select(Effect).where(
            Effect.kind.in_(["cancel", "refund"]), Effect.status == "confirmed")).all()}

    def count(key) -> list[dict[str, Any]]:
        out: dict[tuple, int] = {}
        for r in rows:
            k = key(r)
            out[k] = out.get(k, 0) + 1
        return [{**dict(zip(("a", "b"), k)), "requests": n} for k, n in sorted(out.items())]

    by_reason = [{"reason": x["a"] or "(none given)", "outcome": x["b"], "requests": x["requests"]}
                 for x in count(lambda r: ((r.reason or "").strip().lower(), r.status))]
    by_channel = [{"channel": x["a"], "outcome": x["b"], "requests": x["requests"]}
                  for x in count(lambda r: (r.channel, r.status))]
    decided: dict[str, dict[str, int]] = {}
    for r in rows:
        a = approvals.get(f"cancellation:{r.order_id}:r{r.id}")
        if a is not None and a.decision:
            decided.setdefault(r.rule or "-", {}).setdefault(a.decision, 0)
            decided[r.rule or "-"][a.decision] += 1
    consistency = [{"rule": rule, "decisions": ", ".join(f"{d} {n}" for d, n in sorted(ds.items())),
                    "consistent": f"{100 * max(ds.values()) / sum(ds.values()):.0f}%"}
                   for rule, ds in sorted(decided.items())]
    applied = [r for r in rows if r.status == "applied"]
    done = sum(1 for r in applied if f"order:{r.order_id}:cancel:{r.id}" in refunds)
    refund = [{"applied": len(applied), "refund confirmed": done,
               "completion": f"{100 * done / len(applied):.0f}%" if applied else "-"}]
    return {"by_reason": by_reason, "by_channel": by_channel, "approval_consistency": consistency,
            "refund_completion": refund}
