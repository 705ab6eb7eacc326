"""Reconciliation: catch up on what the webhook inbox missed (every 10 minutes).

Reads every order updated since the cursor from the store API, compares each with the stored
snapshot, and feeds the missed ones into the inbox as if their webhook had arrived; the drain
then handles them like any delivery.
"""

from __future__ import annotations

from datetime import timedelta

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from domain.orders import missed_by_inbox, parse_timestamp
from flows.runtime import runtime
from tasks.reconcile import (announce_pending, feed_into_inbox, fetch_orders_updated_since, read_cursor,
                             stored_versions, write_cursor)

CURSOR = "reconcile.orders.updated_at"
OVERLAP = timedelta(minutes=2)  # clock skew between Shopify and us: re-read a little


@flow(name="reconciliation")
def reconcile_orders() -> dict[str, int]:
    log = get_run_logger()
    rt = runtime()
    raw = read_cursor(rt.database_url, CURSOR)
    since = parse_timestamp(raw)
    nodes = fetch_orders_updated_since(since - OVERLAP if since else None)
    remote = [(int(n["legacyResourceId"]), parse_timestamp(n["updatedAt"])) for n in nodes]
    stored = stored_versions(rt.database_url, [oid for oid, _ in remote])
    missed = missed_by_inbox(remote, stored)
    wanted = {m.order_id for m in missed}
    fed = feed_into_inbox(rt.database_url, rt.settings.shop_domain,
                          [n for n in nodes if int(n["legacyResourceId"]) in wanted])
    if fed:
        announce_pending(rt.settings.shop_domain)
    if remote:
        newest = max(ts for _, ts in remote)
        if since is None or newest > since:
            write_cursor(rt.database_url, CURSOR, newest.isoformat())
    create_table_artifact(
        key="reconciliation",
        table=[{"order_id": m.order_id, "updated_at": m.updated_at.isoformat(), "why": m.reason} for m in missed]
        or [{"order_id": "-", "updated_at": "-", "why": "nothing missed"}],
        description=f"read {len(remote)} orders updated since {raw or 'the beginning'}; fed {len(fed)} into the inbox",
    )
    log.info("reconciliation: %s read, %s missed, %s fed", len(remote), len(missed), len(fed))
    return {"read": len(remote), "missed": len(missed), "fed": len(fed)}
