"""Benchmark: the Black Friday burst - N new orders at once through the routine path.

    python bench/burst.py [--orders 10000] [--plans plus,standard] [--naive-sample 1000]
                           [--prefect-postgres | --prefect-redis]

Processes, as `aftercart up` runs them: a Prefect server (`prefect server start`, SQLite), the
intake service (`python -m aftercart.services intake`, SQLite store, a Prefect event per
delivery), and this process running the `intake-drain` flow back to back as its deployment
would. The sandbox store runs in a process of its own, as Shopify and the mail server are not in
aftercart's processes (bench/sandbox_process.py: Shopify Admin GraphQL with the plan's cost
bucket, signed webhooks, SMTP mailbox, on loopback). The sandbox generator's realistic mix is placed at once;
its `orders/create` webhooks go out as fast as the sandbox sends them.

An order is done when its address verdict and its confirmation decision are recorded, its
confirmation is in the mailbox (orders tagged ac:manual get none), and, for an address exception,
its own `address-review <order>` flow run exists (created through the deployment, as the drain
does; the run's hold and customer message come when a worker runs it - not part of this figure).

Printed per plan: orders/s, webhook-to-last-effect p50/p95/p99, peak RSS of each process, Shopify
cost points per order and the API-budget bound (points beyond the bucket / restore rate), Prefect
task and flow runs created, the server's "queue is full" count. In the same run: the pure-decision
limit (the same orders' decisions in a tight loop, no IO) and the naive design (one flow run per
order, one task per step) on a sample. Ratios are taken within the run.
"""

from __future__ import annotations

import argparse
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import (count_runs, cpu_seconds, pct, peak_rss_mb, sandbox_process, start_prefect,  # noqa: E402
                   stop_prefect, stop_process, tree, wait_for_events)
SECRET = "bench-burst-secret"


def burst(args, plan: str, api: str, base_env: dict, server_pid: int) -> dict:
    import httpx

    from sandbox.serving import free_port
    from tests.helpers import wait_for

    tmp = Path(tempfile.mkdtemp(prefix=f"aftercart-bench-burst-{plan}-"))
    db_file = tmp / "aftercart.db"
    intake_port, smtp = free_port(), free_port()
    intake_url = f"http://127.0.0.1:{intake_port}"
    env = dict(base_env, AFTERCART_DATA_DIR=str(tmp), AFTERCART_WEBHOOK_SECRET=SECRET,
               AFTERCART_INTAKE_PORT=str(intake_port), PREFECT_API_URL=api)
    intake = subprocess.Popen([sys.executable, "-m", "aftercart.services", "intake"], cwd=ROOT, env=env,
                              stdout=open(tmp / "intake.log", "w"), stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: httpx.get(f"{intake_url}/health").status_code == 200, 60, "the intake service")
        sandbox, sandbox_url = sandbox_process.start(tmp / "sandbox.log", plan, smtp,
                                                      f"{intake_url}/webhooks/shopify", SECRET)
        try:
            os.environ.update(
                AFTERCART_DATABASE_URL=f"sqlite:///{db_file}", AFTERCART_DATA_DIR=str(tmp), PREFECT_API_URL=api,
                AFTERCART_SHOPIFY_ADMIN_URL=f"{sandbox_url}/admin/api/2026-10/graphql.json",
                AFTERCART_SHOPIFY_ACCESS_TOKEN="tok", AFTERCART_SMTP_PORT=str(smtp), AFTERCART_THREEPL_URL=sandbox_url,
                AFTERCART_PUBLIC_URL=intake_url)
            from flows.address_validation import address_review
            from flows.intake_drain import drain_inbox

            address_review.to_deployment(name="address-review").apply()  # the drain starts exceptions through it
            runs_before = count_runs(api)
            procs = {"intake": [intake.pid], "drain": [os.getpid()], "sandbox": [sandbox.pid], "server": [server_pid]}
            cpu0 = {k: cpu_seconds(v) for k, v in procs.items()}
            t0 = time.time()
            orders = httpx.post(f"{sandbox_url}/bench/generate", json={"count": args.orders}, timeout=900).json()
            placed = {o["id"]: o["created_at"] for o in orders}
            manual = {o["id"] for o in orders if o["manual"]}
            print(f"  {plan}: {len(orders)} orders placed in {time.time() - t0:.1f} s; draining", flush=True)
            batches = 0
            while True:
                out = drain_inbox(batch_size=500, max_batches=200, linger_seconds=2.0, max_seconds=600.0)
                batches += 1
                with sqlite3.connect(db_file) as c:
                    judged = c.execute("select count(distinct subject) from decisions where sop = 'address'").fetchone()[0]
                if judged >= len(orders) or (out["processed"] == 0 and batches > 3 and
                                             httpx.get(f"{sandbox_url}/bench/status").json()["pending"] == 0):
                    break
            elapsed_drain = time.time() - t0
            cpu = {k: cpu_seconds(v) - cpu0[k] for k, v in procs.items()}
            runs_after = count_runs(api)
            # the last effect of each order: its decisions, its confirmation mail, its exception run
            last: dict[int, float] = {}
            with sqlite3.connect(db_file) as c:
                for subject, at in c.execute("select subject, max(decided_at) from decisions group by subject"):
                    last[int(subject.split(":")[1])] = _ts(at)
            mails, by_name = 0, {o["name"]: o["id"] for o in orders}
            for name, received_at in httpx.get(f"{sandbox_url}/bench/confirmations", timeout=120).json():
                oid = by_name.get(name)
                if oid is not None:
                    mails += 1
                    last[oid] = max(last.get(oid, 0.0), _ts(received_at))
            exceptions = 0
            for run in _runs_named(api, "address-review"):
                oid = by_name.get(run["name"].removeprefix("address-review "))
                if oid is not None:
                    exceptions += 1
                    last[oid] = max(last.get(oid, 0.0), _ts(run["created"]))
            done = [oid for oid in placed if oid in last]
            lat = [last[oid] - placed[oid] for oid in done]
            end = max(last.values()) if last else time.time()
            st = httpx.get(f"{sandbox_url}/bench/status").json()
            cost = st["spent"]
            result = dict(
                plan=plan, orders=len(orders), done=len(done), seconds=end - t0, drain_seconds=elapsed_drain,
                orders_per_s=len(done) / (end - t0), p50=statistics.median(lat) if lat else float("nan"),
                p95=pct(lat, 0.95), p99=pct(lat, 0.99), confirmations=mails, manual=len(manual),
                exception_runs=exceptions, cost=cost, bound=max(0.0, cost - st["maximum"]) / st["restore_rate"],
                total_over_restore=cost / st["restore_rate"],
                flow_runs=runs_after[0] - runs_before[0], task_runs=runs_after[1] - runs_before[1],
                rss_intake=peak_rss_mb(intake.pid), rss_sandbox=peak_rss_mb(sandbox.pid), inbox=_inbox(db_file),
                cpu=cpu)
            return result
        finally:
            stop_process(sandbox)
    finally:
        stop_process(intake)


def _ts(value) -> float:
    from datetime import datetime, timezone

    if isinstance(value, (int, float)):
        return float(value)
    s = str(value).replace("Z", "+00:00")
    dt = datetime.fromisoformat(s)
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def _runs_named(api: str, prefix: str) -> list[dict]:
    """Every flow run whose name starts with `prefix` (paged through the REST API)."""
    import httpx

    out, offset = [], 0
    while True:
        page = httpx.post(f"{api}/flow_runs/filter", timeout=60, json={
            "flow_runs": {"name": {"like_": prefix}}, "limit": 200, "offset": offset}).json()
        out += [r for r in page if r["name"].startswith(prefix)]
        if len(page) < 200:
            return out
        offset += 200


def _inbox(db_file: Path) -> tuple[int, int]:
    with sqlite3.connect(db_file) as c:
        return c.execute("select count(*), count(distinct webhook_id) from webhook_inbox").fetchone()


def pure_limit(n: int) -> tuple[float, int]:
    """The routine decisions of the burst for n generator orders, in a loop with no IO: address
    verdict and outcome, the order_placed event, the confirmation decision and its content."""
    from datetime import datetime, timezone

    from config.policy_loader import load_policy
    from domain.address import check_address
    from domain.address_policy import address_outcome, carrier_of
    from domain.communication import decide_message, message_context, message_order, order_events
    from sandbox.app import Sandbox, SandboxConfig
    from sandbox.world import rest_order

    sb = Sandbox(SandboxConfig(plan="plus"))
    payloads = [rest_order(o, sb.world) for o in sb.generate(n)]
    sb.close()
    policy, now = load_policy(), datetime.now(timezone.utc)
    t = time.perf_counter()
    sent = 0
    for p in payloads:
        v = check_address(p.get("shipping_address"))
        address_outcome(v, policy, "unfulfilled", carrier_of((p.get("shipping_lines") or [{}])[0], policy))
        order = message_order(p, "unfulfilled")
        for ev in order_events("orders/create", p, False)[0]:
            d = decide_message(ev, order, policy, now)
            if d.send:
                message_context(d.template, ev, order, policy, now)
                sent += 1
    return n / (time.perf_counter() - t), sent


def naive(n: int, api: str, base_env: dict) -> float:
    """One flow run per order with one task per step (judge the address, record it, decide the
    message, send it, start the review), sequentially on n orders, against the same sandbox kind
    (in a process of its own, as in the burst).
    Flow heartbeats are off here, which favours the naive design."""
    from prefect import flow, task
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    from config.policy_loader import load_policy
    from domain.address import check_address
    from domain.address_policy import address_outcome, carrier_of
    from domain.communication import decide_message, message_context, message_order, order_events
    import httpx

    from sandbox.serving import free_port
    from tasks import effects
    from tasks.db import store
    from tasks.db.engine import migrate
    from tasks.db.models import Decision

    tmp = Path(tempfile.mkdtemp(prefix="aftercart-bench-naive-"))
    db = f"sqlite:///{tmp / 'aftercart.db'}"
    migrate(db)
    smtp = free_port()
    policy = load_policy()

    @task
    def judge(p):
        v = check_address(p.get("shipping_address"))
        return v, address_outcome(v, policy, "unfulfilled", carrier_of((p.get("shipping_lines") or [{}])[0], policy))

    @task
    def record(oid, v, outcome):
        store.record_decisions(db, [Decision(sop="address", subject=f"order:{oid}", outcome=v.verdict,
                                             reasons=list(v.reasons), rule=outcome.rule, policy_version=policy.version,
                                             policy_hash=policy.content_hash, inputs={})])

    @task
    def decide(p):
        order = message_order(p, "unfulfilled")
        ev = order_events("orders/create", p, False)[0][0]
        d = decide_message(ev, order, policy, time_now())
        return d, (message_context(d.template, ev, order, policy, time_now()) if d.send else None), order

    @task
    def send(oid, d, ctx, order):
        effects.send_customer_message(db, oid, order.email, d.template, d.language, ctx, effect_key=d.effect_key)

    @task
    def review(oid, name):
        from prefect.deployments import run_deployment

        run_deployment("address-review/address-review", timeout=0, as_subflow=False,
                       parameters={"order_id": oid, "order_name": name}, flow_run_name=f"address-review {name}")

    @flow(name="naive-order")
    def one_order(p):
        v, outcome = judge(p)
        record(p["id"], v, outcome)
        d, ctx, order = decide(p)
        if d.send:
            send(p["id"], d, ctx, order)
        if outcome.action != "accept":
            review(p["id"], p["name"])

    sandbox, url = sandbox_process.start(tmp / "sandbox.log", "plus", smtp)  # as in the burst: a process of its own
    try:
        os.environ.update(AFTERCART_DATABASE_URL=db, AFTERCART_SMTP_PORT=str(smtp), PREFECT_API_URL=api)
        payloads = [o["payload"] for o in httpx.post(f"{url}/bench/generate", json={"count": n, "payloads": True},
                                                     timeout=600).json()]
        with temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            t = time.perf_counter()
            for p in payloads:
                one_order(p)
            return n / (time.perf_counter() - t)
    finally:
        stop_process(sandbox)


def time_now():
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def server_kind(args) -> str:
    if args.prefect_redis:
        return "PostgreSQL with Redis events and its services in their own process"
    return "PostgreSQL" if args.prefect_postgres else "SQLite"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--plans", default="plus,standard")
    ap.add_argument("--naive-sample", type=int, default=1000)
    ap.add_argument("--prefect-postgres", action="store_true",
                    help="run the Prefect server on a throwaway PostgreSQL (scripts/pg-test-server) instead of SQLite")
    ap.add_argument("--prefect-redis", action="store_true",
                    help="the Prefect server as Prefect documents it for load: PostgreSQL, a throwaway redis-server "
                         "for events, the background services in a process of their own")
    ap.add_argument("--naive-rate", type=float, default=None, help=argparse.SUPPRESS)  # from the first plan's run
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    plans = args.plans.split(",")
    if len(plans) > 1:  # one process per plan: Prefect's client settings and event worker are per process
        import re

        rate = None
        for n, plan in enumerate(plans):
            cmd = [sys.executable, __file__, "--orders", str(args.orders), "--plans", plan,
                   "--naive-sample", str(args.naive_sample if n == 0 else 0)]
            cmd += ["--prefect-postgres"] if args.prefect_postgres else []
            cmd += ["--prefect-redis"] if args.prefect_redis else []
            cmd += ["--naive-rate", str(rate)] if rate else []
            out = subprocess.run(cmd, stdout=subprocess.PIPE, text=True).stdout
            print(out, end="", flush=True)
            found = re.search(r"\(naive: ([0-9.]+) orders/s", out)
            rate = rate or (float(found.group(1)) if found else None)
        return

    tmp = Path(tempfile.mkdtemp(prefix="aftercart-bench-burst-"))
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "AFTERCART_"))}
    base["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
    print(f"cores: {os.cpu_count()}; {args.orders} orders per plan; aftercart's store on SQLite, the Prefect "
          f"server on {server_kind(args)} (a fresh one per plan)", flush=True)
    limit, confirmations = pure_limit(args.orders)
    print(f"pure-decision limit  {limit:,.0f} orders/s ({confirmations} confirmations decided, no IO)", flush=True)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    drops, naive_rate = 0, args.naive_rate or float("nan")
    for plan in args.plans.split(","):
        server, api, log, pg_dir = start_prefect(tmp / plan, base, args.prefect_postgres, args.prefect_redis)
        try:
            with temporary_settings({PREFECT_API_URL: api}):  # this plan's own server (settings load once)
                r = burst(args, plan, api, base, server.pid)
                r["rss_server"] = sum(peak_rss_mb(p) for p in tree(server.pid))  # with its redis and services
                if naive_rate != naive_rate and args.naive_sample:  # measured once, at the first plan
                    naive_rate = naive(args.naive_sample, api, base)
            events_line = wait_for_events(server)
        finally:
            stop_prefect(server, pg_dir)
            drops += log.read_text(errors="replace").lower().count("queue is full")
        print(f"\n== burst at the {r['plan']} plan ==")
        print(f"orders done          {r['done']} of {r['orders']} in {r['seconds']:.1f} s = "
              f"{r['orders_per_s']:.0f} orders/s")
        print(f"webhook->last effect p50 {r['p50']:.1f} s / p95 {r['p95']:.1f} s / p99 {r['p99']:.1f} s")
        print(f"effects              {r['confirmations']} confirmations mailed ({r['manual']} ac:manual orders "
              f"get none), {r['exception_runs']} address-review runs created")
        print(f"inbox                {r['inbox'][0]} rows, {r['inbox'][1]} distinct webhook ids")
        bound = (f"API-budget bound {r['bound']:.1f} s (points beyond the bucket / restore rate); measured/bound "
                 f"{r['seconds'] / r['bound']:.2f}x" if r["bound"] else "within the bucket: API-budget bound 0 s")
        print(f"Shopify cost         {r['cost']:.0f} points = {r['cost'] / r['orders']:.2f} per order; {bound}; "
              f"total points / restore rate {r['total_over_restore']:.1f} s")
        print(f"Prefect runs         {r['flow_runs']} flow runs, {r['task_runs']} task runs created")
        print(f"peak RSS             intake {r['rss_intake']:.0f} MB; drain {peak_rss_mb():.0f} MB; "
              f"Prefect server {r['rss_server']:.0f} MB; sandbox (not aftercart) {r['rss_sandbox']:.0f} MB")
        print("CPU seconds          " + ", ".join(f"{k} {v:.0f}" for k, v in r["cpu"].items())
              + f" = {sum(r['cpu'].values()):.0f} over {r['drain_seconds']:.0f} s on {os.cpu_count()} cores"
              + (" (PostgreSQL's own not counted)" if args.prefect_postgres or args.prefect_redis else ""))
        lower = min(limit, r["orders"] / r["bound"]) if r["bound"] else limit
        print(f"burst / min(pure-decision limit, API bound) = {r['orders_per_s'] / lower:.3f}")
        if naive_rate != naive_rate:  # --naive-sample 0
            print("ours / naive         not measured (--naive-sample 0)", flush=True)
        else:
            print(f"ours / naive         {r['orders_per_s'] / naive_rate:.1f}x "
                  f"(naive: {naive_rate:.2f} orders/s" + (" on the first plan's sample)" if args.naive_rate else
                                                            f" on {args.naive_sample} orders)"), flush=True)
        if events_line:
            print(events_line, flush=True)
    print(f"\nPrefect server 'queue is full' warnings: {drops}")


if __name__ == "__main__":
    main()
