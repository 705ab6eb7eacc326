"""Prefect tasks for the approval deadline sweep."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task

from tasks.db import store


@task(retries=3, retry_delay_seconds=2)
def load_overdue(database_url: str, now: datetime) -> list[dict[str, Any]]:
    return [{"id": a.id, "kind": a.kind, "order_name": a.order_name, "role": a.role,
             "deadline": store.as_utc(a.deadline)} for a in store.overdue_approvals(database_url, now)]


@task(retries=3, retry_delay_seconds=2)
def save_outcomes(database_url: str, outcomes: list[dict[str, Any]], policy_version: str, policy_hash: str) -> int:
    return store.apply_deadline_outcomes(database_url, outcomes, policy_version, policy_hash)
