"""`aftercart scenario run FILE...` and `aftercart scenario new`.

Every file is checked before any is played (a malformed one is refused with the file, the step
and the reason, and nothing runs). Scenarios play one after the other against a private Prefect
server (a temporary one, so the runs never mix with a live system's), each on its own sandbox,
store and simulated clock. Exit status: 0 all passed, 1 an expectation failed or a step could
not be carried out, 2 a file or the policy was refused.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Optional
from xml.etree import ElementTree as ET

import typer
from rich.console import Console

app = typer.Typer(help="Play SOP scenarios on the sandbox with a simulated clock.", no_args_is_help=True)

STARTER = '''\
# An aftercart scenario: a short story from an SOP, written as data (format: shared/scenarios/README.md).
# Play it with:  aftercart scenario run {name}
name  = "My first scenario"
story = "Cancellation SOP: a customer cancels an hour after ordering, before the warehouse has it"
start = 2026-11-27T09:00:00-05:00      # the simulated clock starts here; "HH:MM" below is on this day,
                                       # "+1d 10:00" the next day at 10:00

# [policy]                             # optional: overrides merged onto the default policy (same keys)
# order_edit.window_minutes = 30

[[orders]]
ref = "A"                              # the name the steps use
at = "09:02"
customer = {{ email = "dana@example.com", locale = "en" }}
shipping_address = {{ name = "Dana Wu", address1 = "405 Lexington Ave", address2 = "", city = "New York", province_code = "NY", zip = "10174", country_code = "US" }}
line_items = [ {{ sku = "MUG-01", quantity = 1, price = "18.00" }} ]
# optional: tags, gateway, risk ("low"|"medium"|"high"), order_type, shipping ("standard"|"express"),
# shipping_price, tax

[[steps]]
at = "10:02"
action = "customer_request"            # kinds: address_change, contact_change, shipping_method_change,
order = "A"                            #        quantity_change, variant_swap, add_item, remove_item, cancel
kind = "cancel"
channel = "self_service"               # self_service | email | chat | social | phone
reason = "ordered twice"

# other actions: warehouse (status), carrier (status), ticket, approve / reject (approver), stock, tick

[[steps]]
at = "10:05"
action = "expect"                      # keys: stage, holds, tags_include, tags_exclude, messages_include,
order = "A"                            # messages_exclude, messages_language, pending_approvals,
cancelled = true                       # pending_approval_roles, cancelled, refunded, shipping_address, line_items
refunded = "18.00"
tags_include = ["ac:cancel:approved"]
messages_include = ["order_confirmation", "cancellation_approved"]
pending_approvals = 0
'''


@app.command("run")
def run(files: list[Path] = typer.Argument(..., help="scenario files (TOML)"),
        policy: Optional[Path] = typer.Option(None, "--policy", help="a policy file to play them under (merged onto "
                                              "the default, then each file's [policy] on top)"),
        junit: Optional[Path] = typer.Option(None, "--junit", help="write a JUnit XML report here (for CI)"),
        verbose: bool = typer.Option(False, "--verbose", help="show the flows' logs")) -> None:
    """Play each scenario on a fresh sandbox with a simulated clock; print every expectation."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")
    raise typer.Exit(run_files(files, policy, Console(highlight=False), junit))


@app.command("new")
def new(file: Path = typer.Argument(Path("my-scenario.toml"), help="where to write it"),
        force: bool = typer.Option(False, "--force", help="overwrite an existing file")) -> None:
    """Write a commented starting scenario that plays and passes as it is."""
    if file.exists() and not force:
        typer.echo(f"{file} exists; choose another name or pass --force", err=True)
        raise typer.Exit(2)
    file.write_text(STARTER.format(name=file), encoding="utf-8")
    typer.echo(f"wrote {file}; play it with: aftercart scenario run {file}")


def run_files(files: list[Path], policy: Path | None, out: Console, junit: Path | None = None,
              private_server: bool = True) -> int:
    from aftercart.scenario.format import ScenarioError, load
    from config.policy_loader import PolicyError, load_policy

    scenarios, refused = [], []
    for f in files:
        try:
            scenarios.append(load(f))
        except ScenarioError as exc:
            refused.append(exc)
    for exc in refused:
        out.print(f"[bold red]refused[/] {exc.path}" + (f" [bold]{exc.where}[/]" if exc.where else "") +
                  f": {exc.reason}")
    if policy is not None:
        try:
            load_policy(policy)
        except PolicyError as exc:
            out.print(f"[bold red]policy refused[/] {exc}")
            return 2
    if refused:
        out.print(f"{len(refused)} of {len(files)} files refused; nothing was played")
        return 2
    with ExitStack() as stack:
        if private_server:
            stack.enter_context(_private_prefect(out))
        results = []
        for sc in scenarios:
            path = _policy_file(stack, policy, sc.policy)
            from aftercart.scenario.play import play

            with out.status(f"playing {sc.path}: {sc.name}"):
                r = play(sc, path)
            results.append(r)
            _print(out, r)
    passed = sum(r.ok for r in results)
    out.print(f"\n[bold]{passed} of {len(results)} scenarios passed[/] "
              f"({sum(r.seconds for r in results):.1f} s)")
    if junit:
        _junit(junit, results)
    return 0 if passed == len(results) else 1


def _policy_file(stack: ExitStack, base: Path | None, overrides: dict) -> Path | None:
    """The file the flows load: the --policy file and the scenario's [policy] merged (validated)."""
    if not overrides:
        return base
    import tempfile

    import tomli_w

    from config.policy_loader import merge, read_toml

    data = merge(read_toml(base) if base else {}, overrides)
    d = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aftercart-policy-")))
    (d / "policy.toml").write_text(tomli_w.dumps(data), encoding="utf-8")
    return d / "policy.toml"


def _private_prefect(out: Console):
    """A temporary Prefect server for the run (flow heartbeats off: every run lives in this process).

    Its background services are off: nothing is scheduled or automated there, and on SQLite their
    writes (the task-run recorder's above all) made the runs' own API calls wait out "database is
    locked" 503s (2 s each, about half of every scenario's time). The flow runs and their states are
    recorded as always; task runs are not, on this private server only."""
    from contextlib import contextmanager

    from aftercart.scenario.world import environ

    @contextmanager
    def server():
        stack = ExitStack()
        stack.enter_context(environ({f"PREFECT_SERVER_SERVICES_{s}_ENABLED": "false" for s in (
            "CANCELLATION_CLEANUP", "EVENT_PERSISTER", "FOREMAN", "LATE_RUNS", "SCHEDULER", "PAUSE_EXPIRATIONS",
            "REPOSSESSOR", "CLEANUP_RECONCILER", "TRIGGERS", "TASK_RUN_RECORDER")}))
        from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, PREFECT_SERVER_ANALYTICS_ENABLED, \
            temporary_settings
        from prefect.testing.utilities import prefect_test_harness

        with out.status("starting a private Prefect server for the scenarios"):
            stack.enter_context(temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None,
                                                    PREFECT_SERVER_ANALYTICS_ENABLED: False}))
            stack.enter_context(prefect_test_harness(server_startup_timeout=90))
        with stack:
            yield

    return server()


def _print(out: Console, r) -> None:
    mark = "[green]✓ passed[/]" if r.ok else "[red]✗ failed[/]"
    out.print(f"\n{mark} [bold]{r.name}[/] ({r.path}, {r.seconds:.1f} s)\n  [dim]{r.story}[/]")
    for s in r.steps:
        if s.action != "expect" and s.ok:
            continue
        head = f"  {'[green]✓[/]' if s.ok else '[red]✗[/]'} {s.where} {s.at[11:16]} {s.action} {s.subject}"
        out.print(head)
        for f in s.failures:
            out.print(f"      [red]{f.key}[/]: expected {f.expected!r}, saw {f.seen!r}")
        if s.error:
            out.print(f"      [red]could not be carried out[/]: {s.error}")
    if r.error:
        out.print(f"  [red]error[/]: {r.error}")
    for ref, rows in r.decision_log.items():
        out.print(f"  [bold]decision log of order {ref}[/] (time, SOP, outcome, rule: reasons)")
        for row in rows:
            out.print(f"    {row['at']} {row['sop']} [bold]{row['outcome']}[/] ({row['rule']}): {row['reasons']}")
        if not rows:
            out.print("    (no decisions recorded)")


def _junit(path: Path, results) -> None:
    suite = ET.Element("testsuite", name="aftercart-scenarios", tests=str(len(results)),
                       failures=str(sum(not r.ok for r in results)), time=f"{sum(r.seconds for r in results):.2f}")
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=Path(r.path).stem, name=r.name, time=f"{r.seconds:.2f}")
        if not r.ok:
            lines = [f"{s.where} {s.action} {s.subject}: " + "; ".join(
                [f"{f.key}: expected {f.expected!r}, saw {f.seen!r}" for f in s.failures] + ([s.error] if s.error else []))
                for s in r.steps if not s.ok] + ([r.error] if r.error else [])
            ET.SubElement(case, "failure", message=lines[0] if lines else "failed").text = "\n".join(lines)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
