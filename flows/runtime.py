"""What every flow needs at run time (never at import): settings, store URL, policy."""

from __future__ import annotations

from dataclasses import dataclass

from config.policy_loader import load_policy
from config.settings import Settings, load_settings
from domain.policy import Policy


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    database_url: str
    policy: Policy


def decision_row(rt: Runtime, sop: str, order_id: int, outcome: str, reasons, rule: str | None,
                 **inputs) -> dict:
    """A decision for the store (the `record_decisions` task), with the policy that made it."""
    return dict(sop=sop, subject=f"order:{order_id}", outcome=outcome, reasons=list(reasons), rule=rule,
                policy_version=rt.policy.version, policy_hash=rt.policy.content_hash, inputs=inputs)


def runtime() -> Runtime:
    settings = load_settings()
    return Runtime(settings, settings.resolved_database_url(), load_policy(settings.policy))
