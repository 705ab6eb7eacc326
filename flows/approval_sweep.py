"""Approval deadline sweep (every 5 minutes): escalate or apply the default decision.

It also closes SOP 4's customer windows: a review whose window ran out is marked expired and its
run resumed (it then asks an approver); a run the correction form could not resume (it was not
waiting yet) is resumed here; and an exception the drain judged whose run never started (the
deployment was not served at the time) is started here.

Support has 4 hours, then ops; ops 1 hour, then management; management 24 hours, then the
kind's default (keep the hold, deny the request). Each step is audited and recorded as a
decision. An escalation emails the new role's approvers; a default is recorded first, then the
waiting run is resumed and, reading the approval's status, returns the policy's decision.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from config import clock
from domain.approvals import on_deadline
from flows.runtime import runtime
from tasks.address_io import start_address_reviews
from tasks.approvals import address_reviews_not_started, close_address_windows, load_overdue, save_outcomes, wake_waiting_run
from tasks.effects import send_mail


@flow(name="approval-deadline-sweep")
def sweep_approval_deadlines(now: datetime | None = None) -> dict[str, int]:
    log = get_run_logger()
    rt = runtime()
    now = clock.utc(now)
    overdue = load_overdue(rt.database_url, now)
    outcomes = []
    for a in overdue:
        out = on_deadline(rt.policy, a["kind"], a["role"], a["deadline"], now)
        if out.action != "wait":
            outcomes.append({"id": a["id"], "action": out.action, "role": out.role, "deadline": out.deadline,
                             "decision": out.decision, "reasons": out.reasons, "order_name": a["order_name"],
                             "order_id": a["order_id"], "kind": a["kind"], "from_role": a["role"],
                             "asked": a["asked"], "flow_run_id": a["flow_run_id"], "escalations": a["escalations"]})
    notify = send_mail.with_options(retries=1, retry_delay_seconds=1)
    saved = save_outcomes(rt.database_url, outcomes, rt.policy.version, rt.policy.content_hash)
    for o in outcomes:
        if o["action"] == "escalate":
            for approver in rt.policy.approvals.roles[o["role"]].approvers:
                sent = notify(rt.database_url, o["order_id"], approver,
                          f"[aftercart] {o['order_name']}: {o['kind'].replace('_', ' ')} escalated to {o['role']}",
                          f"{o['asked']}\n\n{o['from_role']} did not decide in time; decide by "
                          f"{o['deadline']:%Y-%m-%d %H:%M} UTC: {rt.settings.prefect_ui_url()}/runs/flow-run/"
                          f"{o['flow_run_id']}\nor: aftercart approvals approve {o['id']} --as {approver}", None,
                          {"X-Aftercart-Approval": o["id"], "X-Aftercart-Order": o["order_name"] or ""},
                          effect_key=f"approval:{o['id']}:notify:{o['role']}:{o['escalations'] + 1}:{approver}",
                          return_state=True)
                if sent.is_failed():  # the escalation stands; the ledger row keeps the failed mail
                    log.warning("could not email %s about %s", approver, o["id"])
        elif o["flow_run_id"]:
            wake_waiting_run(o["flow_run_id"], {"decision": o["decision"], "approver": "aftercart:deadline",
                                                "note": "; ".join(o["reasons"])})
    if outcomes:
        create_table_artifact(
            key="approval-deadlines",
            table=[{"approval": o["id"], "order": o["order_name"], "kind": o["kind"], "from": o["from_role"],
                    "action": o["action"], "to": o["role"]} for o in outcomes],
            description=f"{saved} overdue approvals escalated or defaulted at {now.isoformat()}",
        )
    missing = address_reviews_not_started(rt.database_url, now)
    if missing:
        started = start_address_reviews(missing, return_state=True)
        log.log(40 if started.is_failed() else 20, "%s address reviews not started yet: %s", len(missing),
                started.message if started.is_failed() else "started")
    windows = close_address_windows(rt.database_url, now)
    woken = 0
    for w in windows:
        woken += bool(wake_waiting_run(w["flow_run_id"], {"status": w["status"]}))
    if windows:
        create_table_artifact(
            key="address-windows",
            table=[{"review": w["id"], "order": w["order_name"], "window": w["status"]} for w in windows],
            description=f"{len(windows)} address reviews whose customer window closed; {woken} waiting runs resumed",
        )
    log.info("%s overdue approvals, %s changed; %s address windows closed, %s runs resumed", len(overdue), saved,
             len(windows), woken)
    return {"overdue": len(overdue), "changed": saved, "address_windows": len(windows), "resumed": woken}
