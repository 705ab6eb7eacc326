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


class DecisionRefused(Exception):
    """A decision the approval's policy does not allow (audited; the request keeps waiting)."""


def submit_decision(database_url: str, policy, approval_id: str, approver: str, decision: str, note: str | None,
                    address: dict | None, channel: str = "cli") -> Any:
    """What an approver's answer goes through outside the UI form (the CLI, the scenario runner):
    the same check as the form, a refusal audited, then the waiting run resumed with the answer.
    Raises LookupError (no such request or no run to resume) or DecisionRefused."""
    from domain.approvals import check_decision

    a = approval_store.get_approval(database_url, approval_id)
    if a is None:
        raise LookupError(f"no approval {approval_id!r}")
    check = check_decision(policy, a.kind, a.role, a.status, approver, decision, note, address, a.address_verdict)
    if not check.ok:
        approval_store.refuse_decision(database_url, a.id, approver, decision, list(check.reasons), channel=channel)
        raise DecisionRefused("; ".join(check.reasons))
    if not a.flow_run_id:
        raise LookupError(f"{a.id} has no waiting run to resume")
    resume_waiting_run(a.flow_run_id, {"decision": decision, "approver": approver, "note": note or "",
                                       **(address or {})})
    return a
