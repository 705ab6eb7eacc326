"""Benchmark: many approvals waiting at once, then every one decided, decision to effect.

    python bench/approvals.py [--waiting 500] [--limit 8] [--prefect-postgres | --prefect-redis] [--no-resume]
                              [--exception-runs thread|process] [--deciders 1]

Processes, as `aftercart up` runs them: a Prefect server of its own (SQLite, or a throwaway
PostgreSQL with --prefect-postgres) and the runner (`python -m aftercart.services serve`: every
deployment, limit AFTERCART_SERVE_LIMIT; the exception runs in its threads, or with
--exception-runs process one process per run as Prefect's serve does), next to the sandbox store
served by this process.

N sandbox orders are at the warehouse (`picking`, in the 3PL and in our store); for each, a
customer asks to cancel, and its real `cancellation-review` run starts through the deployment (the
launch path the intake and the sweep use). By the default policy a cancellation at the warehouse
waits for ops: the run pulls the order back from the 3PL, tells the customer, and suspends. When
all N are Suspended the script prints the processes and total RSS of everything it started (goal:
no process per waiting approval, under 1 GiB in all). Then it decides all N the way `aftercart
approvals approve` does (`submit_decision`: the same check, audit and resume; --deciders
approvers at once, each deciding one after the other) and prints p50/p95
from each decision to its effect, the order cancelled in the sandbox store (goal: p95 <= 10 s),
with the time to the last effect and the resumed runs' states. Each phase also prints the Prefect
task runs it created and the CPU seconds the Prefect server and the runner spent.
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
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import (count_runs, cpu_seconds, pct, start_prefect, stop_prefect, stop_process, tree,  # noqa: E402
                   task_runs_by_name, wait_for_events)


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def count_states(api: str, names: list[str]) -> int:
    import httpx

    return httpx.post(f"{api}/flow_runs/count", json={"flow_runs": {"state": {"name": {"any_": names}}}},
                      timeout=30).json()


def approval_run(db: str, approval_id: str) -> str:
    from tasks.db import approval_store

    return approval_store.get_approval(db, approval_id).flow_run_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--waiting", type=int, default=500)
    ap.add_argument("--limit", type=int, default=8, help="flow runs the runner executes at once (AFTERCART_SERVE_LIMIT)")
    ap.add_argument("--prefect-postgres", action="store_true", help="the Prefect server on a throwaway PostgreSQL")
    ap.add_argument("--prefect-redis", action="store_true",
                    help="the Prefect server as Prefect documents it for load: PostgreSQL, a throwaway redis-server "
                         "for events, the background services in a process of their own")
    ap.add_argument("--timeout", type=float, default=3600.0, help="give up waiting after this many seconds")
    ap.add_argument("--deciders", type=int, default=1,
                    help="approvers submitting decisions at the same time (each one after the other)")
    ap.add_argument("--no-resume", action="store_true", help="stop after measuring the waiting approvals")
    ap.add_argument("--exception-runs", choices=["thread", "process"], default="thread",
                    help="where the runner executes cancellation-review runs (AFTERCART_EXCEPTION_RUNS)")
    args = ap.parse_args()
    if args.deciders < 1 or args.waiting < 1:
        ap.error("--waiting and --deciders take a whole number of 1 or more")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop what we started on SIGTERM too
    server_kind = ("PostgreSQL with Redis events and its services in their own process" if args.prefect_redis
                   else "PostgreSQL" if args.prefect_postgres else "SQLite")

    from sqlmodel import select

    from config.policy_loader import load_policy
    from tasks.db.engine import migrate, session
    from tasks.db.models import Approval, Order
    from tests.helpers import free_port, wait_for
    from tests.sandbox_fixtures import place, served_sandbox

    tmp = Path(tempfile.mkdtemp(prefix="aftercart-bench-approvals-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERCART_"))}
    base["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    server, api, server_log, pg_dir = start_prefect(tmp, base, args.prefect_postgres, args.prefect_redis)
    runner = None
    try:
        db = f"sqlite:///{tmp / 'aftercart.db'}"
        migrate(db)
        smtp = free_port()
        with served_sandbox(smtp_port=smtp) as s:
            sb = s.sandbox
            env = dict(base, PREFECT_API_URL=api, AFTERCART_DATABASE_URL=db, AFTERCART_DATA_DIR=str(tmp),
                       AFTERCART_SHOPIFY_ADMIN_URL=f"{s.url}/admin/api/2026-10/graphql.json",
                       AFTERCART_SHOPIFY_ACCESS_TOKEN="tok", AFTERCART_SMTP_PORT=str(smtp),
                       AFTERCART_THREEPL_URL=s.url, AFTERCART_SERVE_LIMIT=str(args.limit),
                       AFTERCART_SERVE_QUERY_SECONDS="0.2", AFTERCART_EXCEPTION_RUNS=args.exception_runs)
            os.environ.update(PREFECT_API_URL=api, AFTERCART_DATABASE_URL=db, AFTERCART_DATA_DIR=str(tmp))
            runner = subprocess.Popen([sys.executable, "-m", "aftercart.services", "serve"], cwd=ROOT, env=env,
                                      stdout=open(tmp / "runner.log", "w"), stderr=subprocess.STDOUT)
            import httpx

            wait_for(lambda: httpx.get(f"{api}/deployments/name/cancellation-review/cancellation-review").status_code
                     == 200, 180, "the cancellation-review deployment")
            orders = []
            now = datetime.now(timezone.utc)
            with session(db) as dbs:
                for _ in range(args.waiting):
                    oid = place(sb)
                    sb.threepl.receive({"order_id": oid, "lines": [{"sku": "MUG", "quantity": 1}], "address": {},
                                        "flags": []})
                    sb.threepl.advance(oid, "picking")
                    o = sb.world.orders[oid]
                    dbs.add(Order(id=oid, shop="sandbox.myshopify.com", name=o.name, email=o.email, stage="picking",
                                  shopify_updated_at=now))
                    orders.append((oid, o.name))
                dbs.commit()
            from tasks.launch import launch_many

            def cpu() -> dict[str, float]:  # CPU seconds so far of the server's and the runner's process trees
                return {"server": cpu_seconds(tree(server.pid)), "runner": cpu_seconds(tree(runner.pid))}

            t0 = time.monotonic()
            cpu0 = cpu()
            launch_many("cancellation-review/cancellation-review",
                        [({"order_id": oid, "order_name": name, "channel": "email", "reason": "changed my mind"},
                          f"cancellation-review {name}", None) for oid, name in orders])
            print(f"cores: {os.cpu_count()}; Prefect server on {server_kind}; "
                  f"runner limit {args.limit}, exception runs in a {args.exception_runs} each; "
                  f"{args.waiting} cancellation-review runs created in "
                  f"{time.monotonic() - t0:.1f} s", flush=True)
            last = -1
            while (n := count_states(api, ["Suspended"])) < args.waiting:
                if n != last:
                    print(f"  {n}/{args.waiting} waiting for ops ({time.monotonic() - t0:.0f} s)", flush=True)
                    last = n
                if time.monotonic() - t0 > args.timeout:
                    raise SystemExit(f"only {n} runs reached Suspended within {args.timeout:.0f} s (see {tmp})")
                time.sleep(2)
            waited = time.monotonic() - t0
            idle_by = time.monotonic() + 60  # measure when the runner executes nothing (the last suspended runs
            while len(tree(runner.pid)) > 1 and time.monotonic() < idle_by:  # exit, scheduled flows finish)
                time.sleep(0.5)
            pids = {"prefect server": tree(server.pid), "runner (aftercart serve)": tree(runner.pid),
                    "sandbox + this script": [os.getpid()]}
            total = sum(rss_kib(p) for ps in pids.values() for p in ps)
            busy = len(tree(runner.pid)) - 1
            tasks_waiting = count_runs(api)[1]
            cpu_wait = cpu()
            print(f"\n{args.waiting} approvals waiting (all Suspended) after {waited:.0f} s"
                  + (f"; the runner was still executing {busy} other flow run(s) when measured" if busy else ""))
            for name, ps in pids.items():
                print(f"  {name:26} processes {len(ps):3}  RSS {sum(rss_kib(p) for p in ps) / 1024:7.1f} MiB")
            print(f"  {'total':26} processes {sum(len(p) for p in pids.values()):3}  RSS {total / 1024:7.1f} MiB")
            print(f"task runs up to waiting: {tasks_waiting} ({tasks_waiting / args.waiting:.1f} per run); CPU seconds: "
                  f"Prefect server {cpu_wait['server'] - cpu0['server']:.0f}, runner {cpu_wait['runner'] - cpu0['runner']:.0f}")

            if args.no_resume:
                return
            from tasks.approvals_io import submit_decision

            policy = load_policy()
            with session(db) as dbs:
                waiting = {a.order_id: a.id for a in dbs.exec(select(Approval).where(
                    Approval.kind == "cancellation", Approval.status == "pending")).all()}
            assert len(waiting) == args.waiting, f"{len(waiting)} pending approvals for {args.waiting} runs"
            # decision and effect times are both wall clock: a decision's time when the approver submits
            # it (submit_decision called), an effect's the sandbox's own cancelledAt (the store's real
            # clock), so an effect that lands while later decisions are still being submitted counts
            # when it landed
            decided: dict[int, datetime] = {}
            refused: list[str] = []
            t1 = time.monotonic()
            start = datetime.now(timezone.utc)
            cpu1 = cpu()

            def decide_share(share: list[tuple[int, str]]) -> None:  # one approver clearing their part of the queue
                for oid, name in share:
                    try:
                        at = datetime.now(timezone.utc)
                        submit_decision(db, policy, waiting[oid], "ops@sandbox.test", "approve", "bench", None)
                        decided[oid] = at
                    except Exception as exc:  # noqa: BLE001 - counted and shown, the rest go on
                        run = httpx.get(f"{api}/flow_runs/{approval_run(db, waiting[oid])}", timeout=30).json()
                        refused.append(f"{name}: {type(exc).__name__}: {exc} "
                                       f"(run state {run.get('state', {}).get('name')})")

            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(args.deciders) as pool:  # every one decided at once
                list(pool.map(decide_share, [orders[i::args.deciders] for i in range(args.deciders)]))
            print(f"\n{len(decided)} decisions submitted in {time.monotonic() - t1:.1f} s (check, audit, resume; "
                  f"{args.deciders} approver(s) at once)"
                  + (f"; {len(refused)} not accepted:\n  " + "\n  ".join(refused[:10]) if refused else ""), flush=True)
            effect: dict[int, datetime] = {}
            while len(effect) < len(decided) and time.monotonic() - t1 <= args.timeout:
                for oid in decided:
                    if oid not in effect and (at := sb.world.orders[oid].cancelled_at) is not None:
                        effect[oid] = at
                time.sleep(0.05)
            lat = [(effect[o] - decided[o]).total_seconds() for o in effect]
            with open(tmp / "decisions.csv", "w") as f:  # one row per decision, in the order they were made
                f.write("order_id,decided_s,effect_s\n")
                for o in decided:
                    at = f"{(effect[o] - start).total_seconds():.3f}" if o in effect else ""
                    f.write(f"{o},{(decided[o] - start).total_seconds():.3f},{at}\n")
            last = max(effect.values(), default=start)
            print(f"decision to effect (order cancelled in the sandbox store) over {len(lat)} of {len(decided)}: "
                  f"p50 {statistics.median(lat):.1f} s, p95 {pct(lat, 0.95):.1f} s, max {max(lat):.1f} s; "
                  f"last effect {(last - start).total_seconds():.0f} s after the first decision "
                  f"(each decision: {tmp / 'decisions.csv'})")
            wait_for(lambda: count_states(api, ["Completed"]) >= args.waiting, 120, "the resumed runs to complete")
            cpu2 = cpu()
            resumed_tasks = count_runs(api)[1] - tasks_waiting
            by_name = task_runs_by_name(api, start)  # recorded from events: partial while the server is behind
            print(f"task runs after the decisions: {resumed_tasks} ({resumed_tasks / args.waiting:.1f} per resumed run); "
                  + (f"recorded with a start time so far: {sum(by_name.values())}, "
                     + ", ".join(f"{k} {v}" for k, v in by_name.items()) if by_name
                     else "none recorded with a start time yet"))
            print(f"CPU seconds in the resume phase: Prefect server {cpu2['server'] - cpu1['server']:.0f}, "
                  f"runner {cpu2['runner'] - cpu1['runner']:.0f}")
            print(f"resumed runs Completed: {count_states(api, ['Completed'])}, Failed/Crashed: "
                  f"{count_states(api, ['Failed', 'Crashed'])}")
            drops = server_log.read_text(errors="replace").lower().count("queue is full")
            print(f"Prefect 'queue is full' warnings: {drops}")
            if backlog := wait_for_events(server):
                print(backlog)
    finally:
        if runner is not None:
            stop_process(runner)
        stop_prefect(server, pg_dir)


if __name__ == "__main__":
    main()
