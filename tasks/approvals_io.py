"""Prefect tasks around the approvals store and resuming waiting runs (one IO call each)."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.db import approval_store


@task(retries=3, retry_delay_seconds=2)
def open_approval(database_url: str, approval) -> Any:
    return approval_store.open_approval(database_url, approval)


@task(retries=3, retry_delay_seconds=2)
def read_approval(database_url: str, approval_id: str) -> Any:
    return approval_store.get_approval(database_url, approval_id)


@task(retries=3, retry_delay_seconds=2)
def note_waiting_run(database_url: str, approval_id: str, flow_run_id: str) -> None:
    approval_store.set_approval_run(database_url, approval_id, flow_run_id)


@task(retries=3, retry_delay_seconds=2)
def refuse(database_url: str, approval_id: str, approver: str, decision: str, reasons: list[str]) -> int:
    return approval_store.refuse_decision(database_url, approval_id, approver, decision, reasons, channel="resume")


@task(retries=3, retry_delay_seconds=2)
def decide(database_url: str, approval_id: str, approver: str, decision: str, note: str | None,
           address: dict | None, policy_version: str, policy_hash: str) -> Any:
    return approval_store.decide_approval(database_url, approval_id, approver, decision, note, address, policy_version,
                                 policy_hash, channel="resume")


def resume_waiting_run(flow_run_id: str, run_input: dict[str, Any]) -> None:
    """Resume a suspended or paused run with a decision (used by the CLI and the deadline sweep)."""
    from uuid import UUID

    from prefect.flow_runs import resume_flow_run

    resume_flow_run(UUID(flow_run_id), run_input=run_input)


@task(retries=3, retry_delay_seconds=2)
def note_effect(database_url: str, approval_id: str, effect: dict[str, Any]) -> None:
    approval_store.record_effect_of_decision(database_url, approval_id, effect)
