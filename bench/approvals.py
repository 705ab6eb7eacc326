"""Benchmark: many approvals waiting at once, then resume-to-effect latency.

    python bench/approvals.py [--waiting 500] [--resume 50] [--limit 8]

Starts a Prefect server (SQLite, in a temporary directory), the sandbox store and a runner serving
a deployment that waits for an approval (the cancellation-review stand-in of the tests). It starts
N runs, waits until all are suspended, and prints the processes and total RSS of everything it
started (goal: no process per waiting approval, under 1 GiB in all). Then it submits M decisions the
way `aftercart approvals approve` does (same check, then resume through the API) and prints p50 and
p95 from decision submitted to the order cancelled in the sandbox (goal: p95 <= 10 s).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree(pid: int) -> list[int]:
    """pid and every descendant."""
    kids: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int((p / "stat").read_text().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(p.name))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        x = todo.pop()
        out.append(x)
        todo += kids.get(x, [])
    return out




def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--waiting", type=int, default=500)
    ap.add_argument("--resume", type=int, default=50)
    ap.add_argument("--limit", type=int, default=8, help="flow runs the runner executes at once")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what we started on SIGTERM too

    from domain.approvals import check_decision
    from config.policy_loader import load_policy
    from tasks.db import approval_store
    from tasks.db.engine import migrate
    from tests.helpers import free_port, wait_for as wait
    from tests.sandbox_fixtures import place, served_sandbox

    tmp = Path(tempfile.mkdtemp(prefix="aftercart-bench-"))
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERCART_"))}
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                               str(port)], env=dict(base, PREFECT_HOME=str(tmp / "prefect"),
                                                    PREFECT_SERVER_ANALYTICS_ENABLED="false"),
                              stdout=open(tmp / "server.log", "w"), stderr=subprocess.STDOUT)
    runner = None
    try:
        wait(lambda: httpx.get(f"{api}/health").status_code == 200, 120, "the Prefect server")
        db = f"sqlite:///{tmp / 'aftercart.db'}"
        migrate(db)
        os.environ["PREFECT_API_URL"] = api
        smtp = free_port()
        with served_sandbox(smtp_port=smtp) as s:
            env = dict(base, PREFECT_API_URL=api, PREFECT_SERVER_ANALYTICS_ENABLED="false", AFTERCART_DATABASE_URL=db,
                       AFTERCART_SHOPIFY_ADMIN_URL=f"{s.url}/admin/api/2026-10/graphql.json",
                       AFTERCART_SHOPIFY_ACCESS_TOKEN="tok", AFTERCART_SMTP_PORT=str(smtp))
            runner = subprocess.Popen([sys.executable, "-c", (
                "from prefect import serve; from tests.approval_demo import cancellation_needing_ops as f; "
                f"serve(f.to_deployment(name='approval-demo'), limit={args.limit}, query_seconds=0.5)")],
                cwd=ROOT, env=env, stdout=open(tmp / "runner.log", "w"), stderr=subprocess.STDOUT)
            dep = wait(lambda: httpx.get(f"{api}/deployments/name/approval-demo/approval-demo").json().get("id"),
                       120, "the deployment")
            orders = [place(s.sandbox) for _ in range(args.waiting)]
            t0 = time.monotonic()
            with httpx.Client(timeout=30) as http:
                refused = 0
                for oid in orders:
                    body = {"parameters": {"database_url": db, "order_id": oid,
                                           "order_name": s.sandbox.world.orders[oid].name}}
                    # a SQLite Prefect server under load answers "database is locked" (5xx): retry
                    while http.post(f"{api}/deployments/{dep}/create_flow_run", json=body).status_code >= 300:
                        refused += 1
                        time.sleep(0.5)
                if refused:
                    print(f"  the Prefect server refused {refused} run creations under load (retried)", flush=True)

                def suspended() -> int:
                    r = http.post(f"{api}/flow_runs/count", json={"flow_runs": {"state": {"name": {"any_": ["Suspended"]}}}})
                    return r.json()

                last = -1
                while (n := suspended()) < args.waiting:
                    if n != last:
                        print(f"  {n}/{args.waiting} waiting ({time.monotonic() - t0:.0f} s)", flush=True)
                        last = n
                    if time.monotonic() - t0 > 3600:
                        raise SystemExit("runs did not all reach Suspended within an hour")
                    time.sleep(2)
            time.sleep(3)  # let the last flow-run processes exit
            pids = {"prefect server": tree(server.pid), "runner": tree(runner.pid), "sandbox + this script": [os.getpid()]}
            total = sum(rss_kib(p) for ps in pids.values() for p in ps)
            print(f"\ncores: {os.cpu_count()}")
            print(f"{args.waiting} approvals waiting (all Suspended) after {time.monotonic() - t0:.0f} s")
            for name, ps in pids.items():
                print(f"  {name:22} processes {len(ps):3}  RSS {sum(rss_kib(p) for p in ps) / 1024:7.1f} MiB")
            print(f"  {'total':22} processes {sum(len(p) for p in pids.values()):3}  RSS {total / 1024:7.1f} MiB")

            policy = load_policy()
            from tasks.approvals_io import resume_waiting_run

            latencies = []
            for oid in orders[: args.resume]:
                aid = f"cancellation:{oid}:c1"
                a = approval_store.get_approval(db, aid)
                t = time.monotonic()
                check = check_decision(policy, a.kind, a.role, a.status, "ops@sandbox.test", "approve", "bench", None)
                assert check.ok, check
                resume_waiting_run(a.flow_run_id, {"decision": "approve", "approver": "ops@sandbox.test",
                                                   "note": "bench"})
                wait(lambda: s.sandbox.world.orders[oid].cancelled_at is not None, 120, f"order {oid} cancelled")
                latencies.append(time.monotonic() - t)
            q = statistics.quantiles(latencies, n=20)
            print(f"\nresume to effect over {len(latencies)} decisions (API resume, as the CLI does): "
                  f"p50 {statistics.median(latencies):.2f} s, p95 {q[18]:.2f} s, max {max(latencies):.2f} s")
    finally:
        for p in (runner, server):
            if p is not None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
