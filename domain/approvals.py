"""What the deadline sweep does with an approval whose time ran out (POLICY.md, Approvals)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from domain.policy import Policy


@dataclass(frozen=True)
class DeadlineOutcome:
    action: Literal["wait", "escalate", "default_decision"]
    role: str
    deadline: datetime | None
    decision: str | None
    reasons: tuple[str, ...]


def deadline_for(policy: Policy, role: str, start: datetime) -> datetime:
    return start + timedelta(hours=policy.approvals.roles[role].decide_within_hours)


def on_deadline(policy: Policy, kind: str, role: str, deadline: datetime, now: datetime) -> DeadlineOutcome:
    """Before the deadline: wait. After: escalate to the next role with its own deadline, or, at
    the top, apply the kind's default decision (keep the hold, deny the request)."""
    if now < deadline:
        return DeadlineOutcome("wait", role, deadline, None, ("deadline not reached",))
    rule = policy.approvals.roles[role]
    if rule.on_timeout == "escalate" and rule.escalate_to:
        nxt = rule.escalate_to
        return DeadlineOutcome(
            "escalate", nxt, deadline_for(policy, nxt, now), None,
            (f"{role} did not decide within {rule.decide_within_hours:g} h", f"escalated to {nxt}"),
        )
    spec = policy.approvals.kinds.get(kind)
    default = spec.default if spec else "reject"
    return DeadlineOutcome(
        "default_decision", role, None, default,
        (f"{role} did not decide within {rule.decide_within_hours:g} h",
         f"default decision for {kind}: {default} (keep the hold, deny the request)"),
    )


@dataclass(frozen=True)
class DecisionCheck:
    ok: bool
    reasons: tuple[str, ...]


def check_decision(policy: Policy, kind: str, role: str, status: str, approver: str, decision: str,
                   note: str | None, address: dict | None = None, address_verdict: str | None = None) -> DecisionCheck:
    """Whether `approver` may answer `decision` to a pending request of `kind` owned by `role`.

    The UI form and the CLI go through this same check; a refusal applies nothing.
    """
    reasons: list[str] = []
    spec = policy.approvals.kinds.get(kind)
    if spec is None:
        return DecisionCheck(False, (f"unknown approval kind {kind!r}",))
    if status != "pending":
        reasons.append(f"the request is {status}, not waiting for a decision")
    if not policy.approvals.can_decide(approver, role):
        reasons.append(f"{approver!r} is not an approver for role {role!r} or a role above it")
    if decision not in spec.choices:
        reasons.append(f"{decision!r} is not one of {', '.join(spec.choices)}")
    if decision in spec.needs_note and not (note or "").strip():
        reasons.append(f"{decision!r} needs a note saying why")
    if spec.address_choice and decision == spec.address_choice and not address:
        reasons.append(f"{decision!r} needs the corrected address")
    if decision in spec.not_for_invalid and address_verdict == "invalid":
        reasons.append(f"{decision!r} is not allowed for an invalid address")
    return DecisionCheck(not reasons, tuple(reasons) or ("authorized",))
