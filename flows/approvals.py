"""The one way a flow waits for a person: `await_approval`.

An exception creates an approval request (kind, order, role, what is asked, the rule that asked,
deadline, allowed decisions), tells the role's approvers by email with a link to the run, and
waits for a typed decision from the Prefect UI's Resume form or `aftercart approvals`.

In a deployment run the wait is a suspension: no process and no worker slot are held, and the run
re-runs from the top when resumed, so everything before the wait must go through the effects
ledger (it does: see tasks/effects.py). Flows called directly (tests, the scenario runner) pause
in-process with the same form and the same validation.

Every answer is checked (domain.approvals.check_decision): a refused one is audited and the run
waits again under a new pause key; an accepted one is recorded with approver, time, note and the
policy's version. When the last deadline passes, the deadline sweep records the policy's default
and resumes the run, which then returns that default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

from prefect import get_run_logger
from prefect.input import RunInput
from pydantic import create_model

from config import clock
from domain.approvals import check_decision, deadline_for
from domain.policy import Policy
from flows.runtime import runtime
from tasks import effects
from tasks.approvals_io import decide, note_effect, note_waiting_run, open_approval, read_approval, refuse
from tasks.db.models import Approval

ADDRESS_FIELDS = ("address1", "address2", "city", "province_code", "zip", "country_code")


@dataclass(frozen=True)
class ApprovalRequest:
    kind: str
    order_id: int
    order_name: str
    role: str
    asked: str  # what the approver is asked, in one sentence
    rule: str  # the policy rule that asked
    request_key: str  # business id of the request (several requests on one order wait apart)
    context: dict[str, Any] = field(default_factory=dict)  # customer, items, address, stage, why
    address_verdict: str | None = None


@dataclass(frozen=True)
class ApprovalOutcome:
    approval_id: str
    decision: str
    approver: str
    note: str | None
    address: dict | None
    by_policy: bool


def approval_id_of(req: ApprovalRequest) -> str:
    return f"{req.kind}:{req.order_id}:{req.request_key}"


def form_for(policy: Policy, kind: str) -> type[RunInput]:
    """The Resume form: the kind's choices as an enum, approver, note, and an address where allowed."""
    spec = policy.approvals.kinds[kind]
    fields: dict[str, Any] = {
        "decision": (Literal[tuple(spec.choices)], ...),  # type: ignore[misc]
        "approver": (str, ...),
        "note": (str, ""),
    }
    if spec.address_choice:
        for f in ADDRESS_FIELDS:
            fields[f] = (Optional[str], None)
    return create_model(f"{kind.title().replace('_', '')}Decision", __base__=RunInput, **fields)


def describe(req: ApprovalRequest, row: Approval, policy: Policy, ui_url: str, shop_admin: str) -> str:
    """The markdown shown above the Resume form."""
    c = req.context
    items = "\n".join(f"  - {li.get('quantity')} x {li.get('sku')} {li.get('title', '')}" for li in c.get("items", []))
    addr = c.get("address") or {}
    addr_line = ", ".join(str(addr.get(k)) for k in ("name", "address1", "address2", "city", "province_code", "zip",
                                                     "country_code") if addr.get(k))
    spec = policy.approvals.kinds[req.kind]
    return "\n".join([
        f"### {req.kind.replace('_', ' ')} for order [{req.order_name}]({shop_admin}/orders/{req.order_id})",
        "",
        f"**Asked:** {req.asked}",
        f"**Why a person decides:** {c.get('why', req.rule)} (policy rule `{req.rule}`, policy {policy.ref})",
        f"**Role:** {row.role} · **deadline:** {row.deadline:%Y-%m-%d %H:%M} UTC",
        f"**Customer:** {c.get('customer', '-')} · **stage:** {c.get('stage', '-')}",
        f"**Address:** {addr_line or '-'}" + (f" (verdict: {req.address_verdict})" if req.address_verdict else ""),
        "**Items:**",
        items or "  - (none listed)",
        "",
        f"Choices: {', '.join(spec.choices)}" + (f"; a note is required for {', '.join(spec.needs_note)}"
                                                  if spec.needs_note else "")
        + (f"; `{spec.address_choice}` takes the corrected address fields" if spec.address_choice else ""),
    ])


def _in_deployment() -> bool:
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    return bool(ctx and ctx.flow_run and ctx.flow_run.deployment_id)


def _outcome(row: Approval) -> ApprovalOutcome:
    return ApprovalOutcome(row.id, row.decision or "", row.decided_by or "", row.note, row.decided_address,
                           by_policy=(row.decided_by or "").startswith("aftercart"))


def await_approval(req: ApprovalRequest, timeout_seconds: int | None = None,
                   known: Approval | None = None) -> ApprovalOutcome:
    """Wait for a valid decision on `req`; returns it (or the policy's default after the deadlines).
    `known`: the approval row as the caller just read it (`asked_by_this_run`), not read again."""
    from prefect.flow_runs import pause_flow_run, suspend_flow_run
    from prefect.runtime import flow_run

    log = get_run_logger()
    rt = runtime()
    policy = rt.policy
    if req.kind not in policy.approvals.kinds:
        raise ValueError(f"unknown approval kind {req.kind!r}; the policy knows {sorted(policy.approvals.kinds)}")
    aid = approval_id_of(req)
    run_id = str(flow_run.id)
    ui = rt.settings.prefect_ui_url()
    row = known if known is not None and known.id == aid else read_approval(rt.database_url, aid)
    if row is None or row.flow_run_id != run_id:  # not asked by this run yet: open the request, tell the role
        now = clock.now()
        row = open_approval(rt.database_url, Approval(
            id=aid, kind=req.kind, order_id=req.order_id, order_name=req.order_name, role=req.role, asked=req.asked,
            rule=req.rule, allowed_decisions=list(policy.approvals.kinds[req.kind].choices), requested_at=now,
            deadline=deadline_for(policy, req.role, now), policy_version=policy.version,
            policy_hash=policy.content_hash, context=req.context, address_verdict=req.address_verdict))
        link = f"{ui}/runs/flow-run/{run_id}"
        for approver in policy.approvals.roles[row.role].approvers:
            effects.send_mail(
                rt.database_url, req.order_id, approver, f"[aftercart] {req.order_name}: "
                f"{req.kind.replace('_', ' ')} needs a {row.role} decision", f"{req.asked}\n\nDecide by "
                f"{row.deadline:%Y-%m-%d %H:%M} UTC: {link}\nor: aftercart approvals approve {aid} --as {approver}",
                None, {"X-Aftercart-Approval": aid, "X-Aftercart-Order": req.order_name},
                effect_key=f"approval:{aid}:notify:{row.role}:{row.escalations}:{approver}")
    # else this run asked before and was resumed (a suspended run re-runs from the top): the request
    # and its notices exist (the sweep mails an escalated role itself), so it goes straight to the answer
    # the longest a request can wait: every role's window, escalating to the top, plus a day
    timeout = timeout_seconds or int(sum(r.decide_within_hours for r in policy.approvals.roles.values()) * 3600
                                     + 86400)
    while True:
        if row.status != "pending":
            log.info("approval %s already decided: %s by %s", aid, row.decision, row.decided_by)
            return _outcome(row)
        if row.flow_run_id != run_id:
            note_waiting_run(rt.database_url, aid, run_id)
        form = form_for(policy, req.kind).with_initial_data(description=describe(
            req, row, policy, ui, rt.settings.shopify_admin_url or rt.settings.sandbox_url()))
        key = re.sub(r"[^a-z0-9-]+", "-", f"{aid}-{row.refusals}".lower())  # Prefect's key alphabet
        log.info("waiting for a %s decision on %s (%s)", row.role, req.order_name, aid)
        if _in_deployment():
            answer = suspend_flow_run(wait_for_input=form, key=key, timeout=timeout)
        else:
            answer = pause_flow_run(wait_for_input=form, key=key, timeout=timeout, poll_interval=1)
        row = read_approval(rt.database_url, aid)
        if row.status != "pending":  # the deadline sweep applied the policy's default meanwhile
            return _outcome(row)
        address = None
        if policy.approvals.kinds[req.kind].address_choice:
            address = {f: getattr(answer, f) for f in ADDRESS_FIELDS if getattr(answer, f, None)} or None
        check = check_decision(policy, row.kind, row.role, row.status, answer.approver, answer.decision,
                               answer.note, address, row.address_verdict)
        if not check.ok:
            refuse(rt.database_url, aid, answer.approver, answer.decision, list(check.reasons))
            log.warning("decision refused for %s: %s", aid, "; ".join(check.reasons))
            row = read_approval(rt.database_url, aid)  # its refusal count makes the next wait's key
            continue
        row = decide(rt.database_url, aid, answer.approver, answer.decision, answer.note or None, address,
                     policy.version, policy.content_hash)
        log.info("%s decided %s on %s", answer.approver, answer.decision, aid)
        return _outcome(row)


def asked_by_this_run(kind: str, order_id: int, request_key: str) -> tuple[ApprovalRequest, Approval] | None:
    """The request this run put to an approver before it was suspended, as it was asked, with its
    row (None if it has not asked yet): a resumed run goes from here to `await_approval(request,
    known=row)` without asking again."""
    from prefect.runtime import flow_run

    row = read_approval(runtime().database_url, f"{kind}:{order_id}:{request_key}")
    if row is None or row.flow_run_id != str(flow_run.id):
        return None
    return ApprovalRequest(kind=row.kind, order_id=row.order_id, order_name=row.order_name or str(order_id),
                           role=row.role, asked=row.asked, rule=row.rule or "", request_key=request_key,
                           context=row.context or {}, address_verdict=row.address_verdict), row


def effect_of(outcome: ApprovalOutcome, effect: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """What a decision caused, as recorded: (approval id, the decision and its effect)."""
    return outcome.approval_id, {"decision": outcome.decision, **effect}


def record_effect(outcome: ApprovalOutcome, effect: dict[str, Any]) -> None:
    """Record what a decision caused (the SOP flow calls this after acting on the decision; a flow
    that closes its own record in the same step passes `effect_of(...)` to that write instead)."""
    note_effect(runtime().database_url, *effect_of(outcome, effect))
