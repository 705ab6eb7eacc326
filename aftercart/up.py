"""`aftercart up`: the Prefect server, the sandbox, the intake and the deployments, supervised."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console
from rich.panel import Panel

from aftercart.deployments import ROOT, load_specs
from config.settings import Settings


# The Prefect server's event consumers, batched. By default the task run recorder writes each
# task-run event to the database on its own (batch size 1) and the event persister 20 at a time;
# under load their in-memory queues pass 10,000 and the server drops events ("queue is full").
# Written in batches (flushed at least every second, so the UI stays current) they keep up.
PREFECT_SERVER_TUNING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
}


@dataclass
class Child:
    name: str
    argv: list[str]
    health: str | None
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    log: Path | None = None


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def stop_children(children: list[Child], console: Console, grace: float = 15.0) -> None:
    for c in reversed(children):
        if c.proc and c.proc.poll() is None:
            console.print(f"stopping {c.name} (pid {c.proc.pid})")
            try:
                os.killpg(c.proc.pid, signal.SIGTERM)  # the child's own session: only what we started
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for c in reversed(children):
        if c.proc is None:
            continue
        try:
            c.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            console.print(f"[yellow]{c.name} did not stop in {grace:.0f} s; killing pid {c.proc.pid}[/]")
            try:
                os.killpg(c.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            c.proc.wait()


def run_file(settings: Settings) -> Path:
    return settings.data_dir / "run.json"


def up(settings: Settings, orders_per_minute: float, console: Console, timeout: float = 180.0,
       detach_after_ready: bool = False) -> int:
    from tasks.db.engine import migrate

    data = settings.data_dir.resolve()
    (data / "logs").mkdir(parents=True, exist_ok=True)
    db_url = settings.resolved_database_url()
    migrate(db_url)

    api_url = os.environ.get("PREFECT_API_URL")
    ui_url = None
    base_env = dict(os.environ)
    base_env.update({
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "AFTERCART_HOME": str(ROOT),
        "AFTERCART_DATA_DIR": str(data),
        "AFTERCART_DATABASE_URL": db_url,
        "PYTHONPATH": str(ROOT) + os.pathsep + base_env.get("PYTHONPATH", ""),
    })
    # runs emit heartbeats so the zombie automation (aftercart/automations.py) can mark dead ones Crashed
    base_env.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "30")
    children: list[Child] = []
    py = sys.executable
    if not api_url:
        prefect_home = data / "prefect"
        prefect_home.mkdir(exist_ok=True)
        api_url = f"http://{settings.host}:{settings.prefect_port}/api"
        ui_url = f"http://{settings.host}:{settings.prefect_port}"
        env = dict(base_env, **PREFECT_SERVER_TUNING, PREFECT_HOME=str(prefect_home), PREFECT_UI_API_URL=api_url,
                   PREFECT_SERVER_API_HOST=settings.host, PREFECT_SERVER_API_PORT=str(settings.prefect_port))
        env.pop("PREFECT_API_URL", None)
        children.append(Child("prefect-server", [py, "-m", "prefect", "server", "start", "--host", settings.host,
                                                 "--port", str(settings.prefect_port)], f"{api_url}/health", env))
    base_env["PREFECT_API_URL"] = api_url
    children += [
        Child("sandbox", [py, "-m", "aftercart.services", "sandbox"], f"{settings.sandbox_url()}/health",
              dict(base_env, AFTERCART_ORDERS_PER_MINUTE=str(orders_per_minute))),
        Child("intake", [py, "-m", "aftercart.services", "intake"], f"{settings.intake_url()}/health", dict(base_env)),
        Child("deployments", [py, "-m", "aftercart.services", "serve"], None, dict(base_env)),
    ]
    busy = [c.name for c in children if c.health and _healthy(c.health)]
    if busy:
        console.print(f"[red]already answering on their ports: {', '.join(busy)}[/] (is aftercart already up? "
                      "`aftercart status`)")
        return 1

    stopping = False

    def _stop(signum, _frame):
        nonlocal stopping
        stopping = True

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    t0 = time.monotonic()
    try:
        with console.status("starting aftercart...") as status:
            for c in children:
                c.log = data / "logs" / f"{c.name}.log"
                fh = open(c.log, "ab")
                c.proc = subprocess.Popen(c.argv, env=c.env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
                status.update(f"waiting for {c.name} (pid {c.proc.pid})...")
                while c.health and not _healthy(c.health):
                    if stopping or c.proc.poll() is not None or time.monotonic() - t0 > timeout:
                        why = "stopped by you" if stopping else (
                            f"exited with {c.proc.returncode}" if c.proc.poll() is not None else "timed out")
                        console.print(f"[red]{c.name} did not become healthy ({why}); see {c.log}[/]")
                        stop_children(children, console)
                        return 1
                    time.sleep(0.2)
                console.print(f"[green]✓[/] {c.name} ready after {time.monotonic() - t0:.1f} s (pid {c.proc.pid})")
            # the deployments are registered when the serve process has created them on the server
            status.update("waiting for the deployments to be registered...")
            names = {s.name for s in load_specs()}
            while not _deployments_registered(api_url, names):
                if stopping or children[-1].proc.poll() is not None or time.monotonic() - t0 > timeout:
                    console.print(f"[red]deployments were not registered; see {children[-1].log}[/]")
                    stop_children(children, console)
                    return 1
                time.sleep(0.5)
        elapsed = time.monotonic() - t0
        run_file(settings).write_text(json.dumps({
            "supervisor": os.getpid(), "started_in_seconds": round(elapsed, 2),
            "children": {c.name: {"pid": c.proc.pid, "health": c.health, "log": str(c.log)} for c in children},
            "urls": {"prefect_ui": ui_url, "prefect_api": api_url, "sandbox": settings.sandbox_url(),
                     "intake": f"{settings.intake_url()}/webhooks/shopify"},
        }, indent=2))
        console.print(Panel.fit(
            "\n".join([
                f"Prefect UI    {ui_url or '(external) ' + api_url}",
                f"Sandbox store {settings.sandbox_url()}  (orders: {orders_per_minute:g}/min)",
                f"Intake        {settings.intake_url()}/webhooks/shopify",
                f"Store         {db_url}",
                f"Deployments   {', '.join(sorted(names))}",
                f"Ready in {elapsed:.1f} s. Ctrl-C stops everything.",
            ]), title="aftercart is up", border_style="green"))
        if detach_after_ready:
            return 0
        while not stopping:
            for c in children:
                if c.proc.poll() is not None:
                    console.print(f"[red]{c.name} exited with {c.proc.returncode}; see {c.log}[/]")
                    stopping = True
            time.sleep(0.5)
        return 0
    finally:
        if not detach_after_ready:
            stop_children(children, console)
            run_file(settings).unlink(missing_ok=True)
        for s, h in old.items():
            signal.signal(s, h)


def _deployments_registered(api_url: str, names: set[str]) -> bool:
    try:
        r = httpx.post(f"{api_url}/deployments/filter", json={"limit": 200}, timeout=2.0)
        return r.status_code == 200 and names <= {d["name"] for d in r.json()}
    except (httpx.HTTPError, ValueError):
        return False


def status(settings: Settings, console: Console) -> int:
    from rich.table import Table

    f = run_file(settings)
    if not f.exists():
        console.print("aftercart is not running (no run file in the data directory)")
        return 1
    info = json.loads(f.read_text())
    t = Table(title=f"aftercart (supervisor pid {info['supervisor']}, "
                    f"{'alive' if _alive(info['supervisor']) else 'gone'})")
    for c in ("service", "pid", "process", "health"):
        t.add_column(c)
    bad = 0
    for name, c in info["children"].items():
        alive = _alive(c["pid"])
        health = "-" if not c["health"] else ("ok" if _healthy(c["health"]) else "not answering")
        bad += (not alive) or health == "not answering"
        t.add_row(name, str(c["pid"]), "running" if alive else "gone", health)
    console.print(t)
    for k, v in info["urls"].items():
        if v:
            console.print(f"{k:12} {v}")
    return 1 if bad else 0
