"""Benchmark: one fulfillment-sync run over N sandbox orders (SOP 7's routine bulk work).

    python bench/fulfillment_sync.py [--orders 10000] [--plan plus|standard]

Serves the sandbox store (Shopify Admin GraphQL with its cost bucket, 3PL, helpdesk) on loopback,
places N orders with the sandbox generator's realistic mix, records them in a fresh SQLite store
as the intake would, then runs the real `fulfillment-sync` flow (under a temporary Prefect server)
once the edit windows have closed. Prints orders/s, Shopify cost points spent per order, the
run's task runs, and what was decided (released, held, routed to a person), with the core count.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=10_000)
    ap.add_argument("--plan", choices=["plus", "standard"], default="plus")
    args = ap.parse_args()

    from prefect.testing.utilities import prefect_test_harness

    from domain.orders import order_facts
    from sandbox.world import rest_order
    from tasks.db import store
    from tasks.db.engine import migrate
    from tests.helpers import free_port
    from tests.sandbox_fixtures import served_sandbox

    tmp = Path(tempfile.mkdtemp(prefix="aftercart-bench-sync-"))
    db = f"sqlite:///{tmp / 'aftercart.db'}"
    migrate(db)
    smtp = free_port()
    with served_sandbox(plan=args.plan, smtp_port=smtp) as s:
        os.environ.update(AFTERCART_DATABASE_URL=db, AFTERCART_SHOPIFY_ADMIN_URL=f"{s.url}/admin/api/2026-10/graphql.json",
                          AFTERCART_SHOPIFY_ACCESS_TOKEN="tok", AFTERCART_THREEPL_URL=s.url,
                          AFTERCART_SMTP_PORT=str(smtp), PREFECT_SERVER_ANALYTICS_ENABLED="false")
        t = time.perf_counter()
        orders = s.sandbox.generate(args.orders)
        for o in orders:  # what the intake records from orders/create
            snap = rest_order(o, s.sandbox.world)
            store.upsert_order(db, s.sandbox.config.shop, order_facts(snap), snap)
        print(f"cores: {os.cpu_count()}; {len(orders)} sandbox orders placed and stored in "
              f"{time.perf_counter() - t:.1f} s; Shopify plan {args.plan}", flush=True)
        with prefect_test_harness(server_startup_timeout=60):
            from flows.fulfillment_sync import fulfillment_sync

            before = s.sandbox.api.bucket.status()
            t = time.perf_counter()
            out = fulfillment_sync(now=datetime.now(timezone.utc) + timedelta(minutes=61))
            elapsed = time.perf_counter() - t
            from prefect.client.orchestration import get_client

            with get_client(sync_client=True) as client:
                tasks = client.read_task_runs()
        decided = Counter(out["decisions"])
        print(f"sync run        {elapsed:.1f} s for {len(orders)} orders: {len(orders) / elapsed:.0f} orders/s")
        print(f"Shopify cost    {out['cost_points']:.0f} points, {out['cost_points'] / len(orders):.1f} per order "
              f"(bucket before {before['currentlyAvailable']:.0f}, restore {before['restoreRate']:.0f}/s)")
        print(f"decided         {dict(decided)}")
        print(f"at the 3PL      {len(s.sandbox.threepl.orders)} orders")
        print(f"task runs       {len(tasks)} (not one per order)")


if __name__ == "__main__":
    main()
