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


def runtime() -> Runtime:
    settings = load_settings()
    return Runtime(settings, settings.resolved_database_url(), load_policy(settings.policy))
