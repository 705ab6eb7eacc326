"""Approval requests in the operational store: open, read, list, refuse, decide, escalate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from tasks.db.engine import session
from tasks.db.models import Approval, AuditLog, Decision, utcnow
from tasks.db.store import as_utc

def overdue_approvals(url: str, now: datetime) -> list:
    with session(url) as s:
        q = select(Approval).where(Approval.status == "pending", Approval.deadline <= as_utc(now))
        return list(s.exec(q.order_by(Approval.deadline)).all())


def apply_deadline_outcomes(url: str, outcomes: list[dict[str, Any]], policy_version: str, policy_hash: str) -> int:
    """Escalate or default each overdue approval, with an audit row and a decision row each."""
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


def open_approval(url: str, approval) -> Any:
    """Insert the approval request once; a re-run of the flow gets the row it created before."""
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
    with session(url) as s:
        return s.get(Approval, approval_id)


def list_approvals(url: str, status: str | None = "pending", role: str | None = None,
                   overdue_at: datetime | None = None) -> list:
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


def effect_audit(approval_id: str, effect: dict[str, Any]) -> AuditLog:
    return AuditLog(actor="aftercart", action="approval.effect", subject=f"approval:{approval_id}", detail=effect)


def record_effect_of_decision(url: str, approval_id: str, effect: dict[str, Any]) -> None:
    """Every decision is recorded with the effect it caused."""
    with session(url) as s:
        s.add(effect_audit(approval_id, effect))
        s.commit()
