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


def on_deadline(policy: Policy, role: str, deadline: datetime, now: datetime) -> DeadlineOutcome:
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
    return DeadlineOutcome(
        "default_decision", role, None, policy.approvals.default_decision,
        (f"{role} did not decide within {rule.decide_within_hours:g} h",
         f"default decision: {policy.approvals.default_decision}"),
    )
