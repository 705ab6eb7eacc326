"""The `aftercart` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from aftercart.address_cli import app as address_app
from aftercart.approvals_cli import app as approvals_app
from aftercart.scenario.cli import app as scenario_app
from rich.console import Console

app = typer.Typer(help="aftercart: post-purchase operations for Shopify on Prefect 3.", no_args_is_help=True)
policy_app = typer.Typer(help="Check and inspect policy files.", no_args_is_help=True)
db_app = typer.Typer(help="The operational store.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
app.add_typer(db_app, name="db")
app.add_typer(approvals_app, name="approvals")
app.add_typer(address_app, name="address")
app.add_typer(scenario_app, name="scenario")
report_app = typer.Typer(help="Reports from the operational store.", no_args_is_help=True)
CHANNELS = ("email", "chat", "phone", "social", "self_serve")
app.add_typer(report_app, name="report")


@app.command("cancel")
def cancel_request(
    order_id: int = typer.Argument(..., help="the order's numeric id"),
    order_name: str = typer.Option("", "--name", help="the order's name (#1042), for the run's name"),
    channel: str = typer.Option("email", "--channel", help="where the customer asked: email, chat, phone, social"),
    reason: str = typer.Option("", "--reason", help="the customer's reason"),
) -> None:
    """Record a customer's cancellation request and start its `cancellation-review` run (the
    system must be up: the run goes through the deployment)."""
    from intake.self_serve import start_cancellation_run

    if channel not in CHANNELS:
        _out().print(f"[red]--channel must be one of {', '.join(CHANNELS)}, not {channel!r}[/red]")
        raise typer.Exit(2)
    try:
        run_id = start_cancellation_run(order_id, order_name or str(order_id), reason, channel)
    except Exception as exc:
        _out().print(f"[red]could not start the cancellation review: {exc}[/red] (is `aftercart up` running?)")
        raise typer.Exit(1)
    _out().print(f"cancellation review started: run {run_id}")


@report_app.command("cancellations")
def report_cancellations(month: str = typer.Option(..., "--month", help="YYYY-MM")) -> None:
    """Cancellation requests of a month: by reason, channel and outcome, approval consistency, refunds."""
    from rich.table import Table

    from config.settings import load_settings
    from flows.cancellation_review import month_bounds
    from tasks.db.cancel_store import cancellation_report

    try:
        start, end = month_bounds(month)
    except ValueError as exc:
        _out().print(f"[red]{exc}[/red]")
        raise typer.Exit(2)
    report = cancellation_report(load_settings().resolved_database_url(), start, end)
    for name, rows in report.items():
        table = Table(title=f"{name.replace('_', ' ')} ({month})")
        cols = list(rows[0]) if rows else ["note"]
        for c in cols:
            table.add_column(c)
        for r in rows or [{"note": "no requests"}]:
            table.add_row(*(str(r[c]) for c in cols))
        _out().print(table)


def _out() -> Console:
    return Console(highlight=False)


@policy_app.command("check")
def policy_check(
    file: Optional[Path] = typer.Argument(None, help="policy file (default: AFTERCART_POLICY or the default policy)"),
) -> None:
    """Validate a policy file and print a readable summary; exit 2 with the key path when it is wrong."""
    from config.policy_loader import PolicyError, load_policy
    from config.settings import load_settings

    out = _out()
    path = file or load_settings().policy
    try:
        policy = load_policy(path)
    except PolicyError as exc:
        out.print(f"[bold red]policy rejected[/]: {exc.source}")
        for p in exc.problems:
            out.print(f"  [red]✗[/] {p.path or '(top level)'}: {p.reason}")
        raise typer.Exit(2)
    from aftercart.summary import policy_summary

    policy_summary(out, policy, str(path or "config/policies/default.toml"))


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply the store's schema migrations (aftercart up does this too)."""
    from config.settings import load_settings
    from tasks.db.engine import migrate

    url = load_settings().resolved_database_url()
    migrate(url)
    _out().print(f"store migrated: {url}")


@app.command()
def up(
    orders_per_minute: float = typer.Option(6.0, "--orders-per-minute", min=0, help="sandbox order traffic"),
    timeout: float = typer.Option(180.0, help="seconds to wait for every service to be healthy"),
) -> None:
    """Start the Prefect server, the sandbox store, the webhook intake and the deployments."""
    from aftercart.up import up as run_up
    from config.settings import load_settings

    raise typer.Exit(run_up(load_settings(), orders_per_minute, _out(), timeout=timeout))


@app.command()
def status() -> None:
    """Report what `aftercart up` started and whether it answers."""
    from aftercart.up import status as run_status
    from config.settings import load_settings

    raise typer.Exit(run_status(load_settings(), _out()))


def benchmarks() -> dict[str, str]:
    """The scripts under bench/ (a docstring that starts with "Benchmark:"), by name, with that line."""
    from aftercart.deployments import ROOT

    found = {}
    for path in sorted((ROOT / "bench").glob("*.py")):
        first = path.read_text().lstrip('"\n').split("\n", 1)[0]
        if first.startswith("Benchmark:"):
            found[path.stem] = first.removeprefix("Benchmark:").strip()
    return found


@app.command("bench", add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context, name: Optional[str] = typer.Argument(None, help="the benchmark; none to list them")) -> None:
    """Run a benchmark (`python bench/<name>.py`, its options after the name); without one, list them."""
    import subprocess
    import sys

    from aftercart.deployments import ROOT

    found = benchmarks()
    if name in (None, "--help", "-h"):
        for n, what in found.items():
            _out().print(f"[bold]{n}[/]: {what}", highlight=False)
        _out().print("run one with: aftercart bench <name> \\[its options]; aftercart bench <name> --help lists them")
        return
    if name not in found:
        _out().print(f"[red]no benchmark {name!r}[/]; there are: {', '.join(found)}")
        raise typer.Exit(2)
    raise typer.Exit(subprocess.call([sys.executable, str(ROOT / "bench" / f"{name}.py"), *ctx.args]))


def main() -> None:  # pragma: no cover
    app()
