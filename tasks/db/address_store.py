"""SOP 4's address reviews in the operational store: open, read, correct, expire, resolve, count."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from tasks.db.engine import session
from tasks.db.models import AddressReview, AuditLog, Decision, utcnow
from tasks.db.store import as_utc


def open_review(url: str, review: AddressReview, decision: Decision) -> AddressReview:
    """Insert the review and the decision that opened it once; a re-run of the flow (suspend,
    crash, duplicate trigger) gets the first row and records nothing twice."""
    with session(url) as s:
        existing = s.get(AddressReview, review.id)
        if existing is not None:
            return existing
        s.add(review)
        s.add(decision)
        s.add(AuditLog(actor="aftercart", action="address.review_opened", subject=f"order:{review.order_id}",
                       detail={"review": review.id, "verdict": review.verdict, "reasons": list(review.reasons),
                               "deadline": review.deadline.isoformat()}))
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
            return s.get(AddressReview, review.id)
        s.refresh(review)
        return review


def get_review(url: str, review_id: str) -> AddressReview | None:
    with session(url) as s:
        return s.get(AddressReview, review_id)


def active_review(url: str, order_id: int) -> AddressReview | None:
    """The order's unresolved review, if any (the newest)."""
    with session(url) as s:
        q = select(AddressReview).where(AddressReview.order_id == order_id, AddressReview.status != "resolved")
        return s.exec(q.order_by(AddressReview.opened_at.desc())).first()


def set_review_run(url: str, review_id: str, flow_run_id: str) -> None:
    with session(url) as s:
        r = s.get(AddressReview, review_id)
        if r is not None and r.flow_run_id != flow_run_id:
            r.flow_run_id = flow_run_id
            s.add(r)
            s.commit()


def submit_correction(url: str, review_id: str, address: dict[str, Any], accepted: bool,
                      reasons: list[str]) -> AddressReview | None:
    """The customer's correction: accepted ones close the window; refused ones count an attempt.

    Only a waiting review takes a correction (an expired or resolved one returns unchanged)."""
    with session(url) as s:
        r = s.get(AddressReview, review_id)
        if r is None or r.status != "waiting":
            return r
        if accepted:
            r.status, r.corrected_address, r.corrected_at = "corrected", address, utcnow()
        else:
            r.attempts += 1
        s.add(r)
        s.add(AuditLog(actor="customer", action="address.correction_" + ("accepted" if accepted else "refused"),
                       subject=f"order:{r.order_id}", detail={"review": r.id, "reasons": reasons}))
        s.commit()
        s.refresh(r)
        return r


def expire_overdue(url: str, now: datetime) -> list[AddressReview]:
    """Close the windows that ran out (waiting past the deadline); returns the expired reviews."""
    out = []
    with session(url) as s:
        rows = s.exec(select(AddressReview).where(AddressReview.status == "waiting",
                                                  AddressReview.deadline <= as_utc(now))).all()
        for r in rows:
            r.status = "expired"
            s.add(r)
            s.add(AuditLog(actor="aftercart:deadline", action="address.window_expired", subject=f"order:{r.order_id}",
                           detail={"review": r.id, "deadline": as_utc(r.deadline).isoformat()}))
            out.append(r)
        s.commit()
        for r in out:
            s.refresh(r)
        return out


def answered_but_waiting(url: str) -> list[AddressReview]:
    """Reviews whose window closed (corrected or expired) but whose run has not finished them."""
    with session(url) as s:
        q = select(AddressReview).where(AddressReview.status.in_(["corrected", "expired"]),
                                        AddressReview.flow_run_id.is_not(None))
        return list(s.exec(q).all())


def set_review_status(url: str, review_id: str, status: str) -> None:
    with session(url) as s:
        r = s.get(AddressReview, review_id)
        if r is not None and r.status not in (status, "resolved"):
            r.status = status
            s.add(r)
            s.commit()


def resolve_review(url: str, review_id: str, outcome: str, actor: str) -> AddressReview | None:
    with session(url) as s:
        r = s.get(AddressReview, review_id)
        if r is None or r.status == "resolved":
            return r
        r.status, r.outcome, r.resolved_at = "resolved", outcome, utcnow()
        s.add(r)
        s.add(AuditLog(actor=actor, action="address.review_resolved", subject=f"order:{r.order_id}",
                       detail={"review": r.id, "outcome": outcome}))
        s.commit()
        s.refresh(r)
        return r


def reviews_since(url: str, since: datetime) -> list[AddressReview]:
    with session(url) as s:
        return list(s.exec(select(AddressReview).where(AddressReview.opened_at >= as_utc(since))).all())


def exceptions_without_review(url: str, since: datetime) -> list[dict[str, Any]]:
    """Orders the drain judged as exceptions since `since` that have no review yet (their run was
    never started, or has not run yet): what the sweep (re)starts."""
    with session(url) as s:
        rows = s.exec(select(Decision).where(Decision.sop == "address", Decision.outcome.in_(["review", "invalid"]),
                                             Decision.decided_at >= as_utc(since))).all()
        wanted = {}
        for d in rows:
            inputs = d.inputs or {}
            if inputs.get("action") not in (None, "accept") and inputs.get("key") and d.subject.startswith("order:"):
                wanted[int(d.subject.split(":", 1)[1])] = {"order_id": int(d.subject.split(":", 1)[1]),
                                                          "order_name": inputs.get("order_name") or d.subject,
                                                          "key": inputs["key"]}
        if not wanted:
            return []
        have = set(s.exec(select(AddressReview.order_id).where(AddressReview.order_id.in_(list(wanted)))).all())
        return [w for oid, w in sorted(wanted.items()) if oid not in have]


def address_metrics(url: str, since: datetime) -> list[dict[str, Any]]:
    """SOP 4's figures since `since`: address error rate, orders held for review, self-serve
    correction rate, time to resolve (median and slowest), and outcomes."""
    with session(url) as s:
        judged = [d for d in s.exec(select(Decision).where(Decision.sop == "address",
                                                           Decision.decided_at >= as_utc(since))).all()
                  if "action" in (d.inputs or {})]
        reviews = list(s.exec(select(AddressReview).where(AddressReview.opened_at >= as_utc(since))).all())
    errors = sum(1 for d in judged if d.outcome in ("review", "invalid"))
    held = [r for r in reviews if as_utc(r.deadline) > as_utc(r.opened_at)]
    corrected = sum(1 for r in held if r.outcome == "customer_corrected")
    hours = sorted((as_utc(r.resolved_at) - as_utc(r.opened_at)).total_seconds() / 3600
                   for r in reviews if r.resolved_at)
    outcomes: dict[str, int] = {}
    for r in reviews:
        outcomes[r.outcome or r.status] = outcomes.get(r.outcome or r.status, 0) + 1

    def pct(n: int, d: int) -> str:
        return f"{100 * n / d:.1f}%" if d else "-"

    rows = [
        {"metric": "addresses judged", "value": str(len(judged))},
        {"metric": "address error rate (review or invalid)", "value": pct(errors, len(judged))},
        {"metric": "orders held for review", "value": str(len(held))},
        {"metric": "self-serve correction rate (of held)", "value": pct(corrected, len(held))},
        {"metric": "sent to an approver", "value": str(sum(1 for r in reviews if r.outcome not in
                                                          (None, "customer_corrected") or r.status == "approval"))},
        {"metric": "time to resolve, median (h)", "value": f"{hours[len(hours) // 2]:.2f}" if hours else "-"},
        {"metric": "time to resolve, slowest (h)", "value": f"{hours[-1]:.2f}" if hours else "-"},
    ]
    return rows + [{"metric": f"reviews {k}", "value": str(v)} for k, v in sorted(outcomes.items())]
