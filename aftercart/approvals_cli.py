"""`aftercart approvals`: list, show, approve and reject waiting requests (same checks as the UI)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import Optional

import typer
from rich.console import Console
from rich.panel import Panel
from rich.table import Table

app = typer.Typer(help="Waiting approvals: list, show, approve, reject.", no_args_is_help=True)


def _ctx():
    from config.policy_loader import load_policy
    from config.settings import load_settings

    settings = load_settings()
    if not os.environ.get("PREFECT_API_URL"):  # talk to the server `aftercart up` started
        run = settings.data_dir / "run.json"
        if run.exists():
            os.environ["PREFECT_API_URL"] = json.loads(run.read_text())["urls"]["prefect_api"]
    return settings, settings.resolved_database_url(), load_policy(settings.policy)


@app.command("list")
def list_(role: Optional[str] = typer.Option(None, help="only this role's requests"),
          overdue: bool = typer.Option(False, help="only requests past their deadline"),
          all_: bool = typer.Option(False, "--all", help="decided ones too")) -> None:
    """Waiting requests, soonest deadline first."""
    from tasks.db import approval_store, store

    settings, url, _ = _ctx()
    now = datetime.now(timezone.utc)
    rows = approval_store.list_approvals(url, status=None if all_ else "pending", role=role, overdue_at=now if overdue else None)
    t = Table(title=f"approvals ({len(rows)})")
    t.add_column("id", no_wrap=True)
    for c in ("kind", "order", "role", "status", "deadline", "asked"):
        t.add_column(c)
    for a in rows:
        deadline = store.as_utc(a.deadline)
        late = a.status == "pending" and deadline <= now
        t.add_row(a.id, a.kind, a.order_name or "-", a.role, a.status,
                  f"[red]{deadline:%Y-%m-%d %H:%M} overdue[/]" if late else f"{deadline:%Y-%m-%d %H:%M}", a.asked)
    Console().print(t)


@app.command()
def show(approval_id: str) -> None:
    """One request: what is asked, why, the order, the choices, and its audit trail."""
    from sqlmodel import select

    from tasks.db import approval_store, store
    from tasks.db.engine import session
    from tasks.db.models import AuditLog

    settings, url, policy = _ctx()
    a = approval_store.get_approval(url, approval_id)
    if a is None:
        typer.echo(f"no approval {approval_id!r}", err=True)
        raise typer.Exit(2)
    spec = policy.approvals.kinds.get(a.kind)
    lines = [f"kind: {a.kind}   order: {a.order_name}   role: {a.role}   status: {a.status}",
             f"asked: {a.asked}", f"rule: {a.rule}   policy: {a.policy_version}",
             f"deadline: {store.as_utc(a.deadline):%Y-%m-%d %H:%M} UTC   escalations: {a.escalations}",
             f"choices: {', '.join(a.allowed_decisions)}" + (f"   (note needed for {', '.join(spec.needs_note)})"
                                                             if spec and spec.needs_note else ""),
             f"context: {json.dumps(a.context, ensure_ascii=False)}"]
    if a.flow_run_id:
        lines.append(f"run: {settings.prefect_ui_url()}/runs/flow-run/{a.flow_run_id}")
    if a.status != "pending":
        lines.append(f"decided: {a.decision} by {a.decided_by} at {a.decided_at}   note: {a.note or '-'}")
    con = Console()
    con.print(Panel("\n".join(lines), title=a.id))
    with session(url) as s:
        trail = s.exec(select(AuditLog).where(AuditLog.subject == f"approval:{a.id}").order_by(AuditLog.id)).all()
    t = Table(title="audit")
    for c in ("at", "actor", "action", "detail"):
        t.add_column(c)
    for r in trail:
        t.add_row(f"{store.as_utc(r.at):%Y-%m-%d %H:%M:%S}", r.actor, r.action, json.dumps(r.detail, ensure_ascii=False))
    con.print(t)


def _decide(approval_id: str, approver: str, decision: str, note: str | None, address: dict | None) -> None:
    from tasks.approvals_io import DecisionRefused, submit_decision

    _, url, policy = _ctx()
    try:
        a = submit_decision(url, policy, approval_id, approver, decision, note, address, channel="cli")
    except LookupError as exc:
        typer.echo(str(exc.args[0]), err=True)
        raise typer.Exit(2 if str(exc.args[0]).startswith("no approval") else 1)
    except DecisionRefused as exc:
        typer.echo(f"refused (audited; the request keeps waiting): {exc}", err=True)
        raise typer.Exit(2)
    except Exception as exc:  # not paused any more, timed out, server unreachable
        typer.echo(f"could not resume the run of {approval_id}: {exc}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{decision} sent for {a.id} ({a.order_name}); the run applies it and records it")


@app.command()
def approve(approval_id: str, as_: str = typer.Option(..., "--as", help="your approver email"),
            note: Optional[str] = typer.Option(None), choice: Optional[str] = typer.Option(
                None, help="the decision when the kind has no plain 'approve' (e.g. ship_as_is, correct_address)"),
            address: Optional[str] = typer.Option(None, help='corrected address as JSON {"address2": "Apt 4B"}')) -> None:
    """Approve (or answer with --choice) a waiting request."""
    try:
        addr = json.loads(address) if address else None
    except ValueError:
        typer.echo("--address must be a JSON object", err=True)
        raise typer.Exit(2)
    _decide(approval_id, as_, choice or "approve", note, addr)


@app.command()
def reject(approval_id: str, as_: str = typer.Option(..., "--as", help="your approver email"),
           note: str = typer.Option(..., help="why (required)")) -> None:
    """Reject a waiting request (a note is required)."""
    _decide(approval_id, as_, "reject", note, None)
