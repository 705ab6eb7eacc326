"""Prefect tasks for the approval deadline sweep."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task

from tasks.db import approval_store, store


@task(retries=3, retry_delay_seconds=2)
def load_overdue(database_url: str, now: datetime) -> list[dict[str, Any]]:
    return [{"id": a.id, "kind": a.kind, "order_name": a.order_name, "order_id": a.order_id, "role": a.role,
             "asked": a.asked, "flow_run_id": a.flow_run_id, "escalations": a.escalations,
             "deadline": store.as_utc(a.deadline)} for a in approval_store.overdue_approvals(database_url, now)]


@task(retries=3, retry_delay_seconds=2)
def save_outcomes(database_url: str, outcomes: list[dict[str, Any]], policy_version: str, policy_hash: str) -> int:
    return approval_store.apply_deadline_outcomes(database_url, outcomes, policy_version, policy_hash)


@task(retries=2, retry_delay_seconds=2)
def wake_waiting_run(flow_run_id: str, run_input: dict[str, Any]) -> bool:
    """Resume the run waiting on a defaulted approval; a run that no longer waits is left alone."""
    from prefect import get_run_logger
    from prefect.exceptions import FlowPauseTimeout, NotPausedError

    from tasks.approvals_io import resume_waiting_run

    try:
        resume_waiting_run(flow_run_id, run_input)
        return True
    except (NotPausedError, FlowPauseTimeout, RuntimeError) as exc:
        get_run_logger().warning("run %s was not waiting (%s); the default is recorded", flow_run_id, exc)
        return False


@task(retries=3, retry_delay_seconds=2)
def close_address_windows(database_url: str, now: datetime) -> list[dict[str, Any]]:
    """SOP 4: expire the customer windows that ran out, and list every review whose window closed
    (expired now, or corrected or expired earlier) while its run may still be waiting."""
    from tasks.db import address_store

    address_store.expire_overdue(database_url, now)
    return [{"id": r.id, "order_name": r.order_name, "status": r.status, "flow_run_id": r.flow_run_id}
            for r in address_store.answered_but_waiting(database_url)]


@task(retries=3, retry_delay_seconds=2)
def address_reviews_not_started(database_url: str, now: datetime) -> list[dict[str, Any]]:
    """Exceptions the drain judged in the last week whose review run never started."""
    from datetime import timedelta

    from tasks.db import address_store

    return address_store.exceptions_without_review(database_url, now - timedelta(days=7))
