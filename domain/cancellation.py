"""SOP 3: what a cancellation request gets, by policy (POLICY.md, cancellation and refund).

Every rule of `policy.cancellation.rules` that matches the order is collected; the most
restrictive wins: deny, then approval by the highest role, then apply. The answer carries the
rule that decided and every rule that matched, so an approver (and the monthly report) can see why.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from domain.policy import Policy


@dataclass(frozen=True)
class CancelFacts:
    """What the decision reads about the order and its customer."""

    stage: str
    risk: str = "low"
    chargebacks: int = 0
    customer_tags: tuple[str, ...] = ()
    order_tags: tuple[str, ...] = ()
    digital_delivered: bool = False
    cancelled: bool = False


@dataclass(frozen=True)
class CancelDecision:
    outcome: Literal["apply", "approval", "deny", "refuse"]
    role: str | None
    rule: str
    matched: tuple[str, ...]
    pull_back_from_3pl: bool
    reasons: tuple[str, ...]


def _matches(when, f: CancelFacts) -> list[str]:
    """The conditions of `when` that hold (every condition given must hold for the rule to match)."""
    checks = []
    if when.stages:
        checks.append((f.stage in when.stages, f"order is {f.stage}"))
    if when.risk_levels:
        checks.append((f.risk in when.risk_levels, f"risk {f.risk}"))
    if when.min_chargebacks is not None:
        checks.append((f.chargebacks >= when.min_chargebacks, f"{f.chargebacks} chargebacks"))
    if when.customer_tags:
        hit = sorted(set(when.customer_tags) & set(f.customer_tags))
        checks.append((bool(hit), f"customer tagged {', '.join(hit)}"))
    if when.order_tags:
        hit = sorted(set(when.order_tags) & set(f.order_tags))
        checks.append((bool(hit), f"order tagged {', '.join(hit)}"))
    if when.digital_delivered is not None:
        checks.append((f.digital_delivered == when.digital_delivered, "digital goods delivered"))
    if not checks or not all(ok for ok, _ in checks):
        return []
    return [why for _, why in checks]


def decide_cancellation(facts: CancelFacts, policy: Policy) -> CancelDecision:
    if facts.cancelled:
        return CancelDecision("refuse", None, "already_cancelled", (), False, ("the order is already cancelled",))
    rank = policy.approvals.rank

    def severity(o) -> tuple[int, int]:  # deny > approval by a higher role > apply
        if o.outcome == "deny":
            return (2, 0)
        return (1, rank.index(o.role)) if o.outcome == "approval" else (0, 0)

    hits = [(severity(rule.outcome), rule, why) for rule in policy.cancellation.rules
            if (why := _matches(rule.when, facts))]
    if not hits:  # a stage no rule names (on_hold): a person looks at it
        return CancelDecision("approval", "ops", "no_rule", (), False,
                              (f"no cancellation rule covers stage {facts.stage}", "approval (ops)"))
    severity, rule, why = max(hits, key=lambda h: h[0])
    o = rule.outcome
    outcome = "deny" if o.outcome == "deny" else "approval" if o.outcome == "approval" else "apply"
    return CancelDecision(
        outcome, o.role if outcome == "approval" else None, rule.name, tuple(r.name for _, r, _ in hits),
        any(r.pull_back_from_3pl for _, r, _ in hits) and outcome != "deny",
        (*why, f"{outcome}" + (f" ({o.role})" if outcome == "approval" else "") + f" by rule {rule.name}"),
    )


def check_refund_amount(amount: str | None, captured: str) -> str | None:
    """A partial refund amount: None when fine, else the error recorded on the request."""
    if amount is None:
        return None
    try:
        a, c = Decimal(str(amount)), Decimal(str(captured))
    except (InvalidOperation, ValueError):
        return f"refund amount {amount!r} is not a number"
    if not a.is_finite() or a <= 0:
        return f"refund amount {amount} must be positive"
    if a > c:
        return f"refund amount {amount} is above what was captured ({captured})"
    return None
