"""Approval deadline sweep (every 5 minutes): escalate or apply the default decision.

Support has 4 hours, then ops; ops 1 hour, then management; management 24 hours, then the
kind's default (keep the hold, deny the request). Each step is audited and recorded as a
decision. Resuming the waiting flow run with the default decision belongs to the approvals
helper (flows/approvals.py), which reads the approval's status when it wakes.
"""

from __future__ import annotations

from datetime import datetime, timezone

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from domain.approvals import on_deadline
from flows.runtime import runtime
from tasks.approvals import load_overdue, save_outcomes


@flow(name="approval-deadline-sweep")
def sweep_approval_deadlines(now: datetime | None = None) -> dict[str, int]:
    log = get_run_logger()
    rt = runtime()
    now = now or datetime.now(timezone.utc)
    overdue = load_overdue(rt.database_url, now)
    outcomes = []
    for a in overdue:
        out = on_deadline(rt.policy, a["role"], a["deadline"], now)
        if out.action != "wait":
            outcomes.append({"id": a["id"], "action": out.action, "role": out.role, "deadline": out.deadline,
                             "decision": out.decision, "reasons": out.reasons, "order_name": a["order_name"],
                             "kind": a["kind"], "from_role": a["role"]})
    saved = save_outcomes(rt.database_url, outcomes, rt.policy.version, rt.policy.content_hash)
    if outcomes:
        create_table_artifact(
            key="approval-deadlines",
            table=[{"approval": o["id"], "order": o["order_name"], "kind": o["kind"], "from": o["from_role"],
                    "action": o["action"], "to": o["role"]} for o in outcomes],
            description=f"{saved} overdue approvals escalated or defaulted at {now.isoformat()}",
        )
    log.info("%s overdue approvals, %s changed", len(overdue), saved)
    return {"overdue": len(overdue), "changed": saved}
