"""SOP 7's IO as Prefect tasks: one task per batch (never one per order), effects through the ledger."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from prefect import task

from config.settings import load_settings
from tasks.clients.factory import helpdesk_client, shopify_client, threepl_client
from tasks.clients.threepl import ThreePLError
from tasks.db import fulfillment_store
from tasks.db.ledger import perform_effect
from tasks.db.store import get_cursor, set_cursor


@task(retries=3, retry_delay_seconds=2)
def release_candidates(database_url: str, created_before: datetime, limit: int) -> list[int]:
    return fulfillment_store.release_candidates(database_url, created_before, limit)


@task(retries=1, retry_delay_seconds=5)  # the sync runs every few minutes: the next run catches up
def read_for_release(order_ids: list[int]) -> dict[str, Any]:
    """Shopify's current word on these orders (fulfillment orders, holds, tags), and the cost points spent."""
    with shopify_client(load_settings()) as shopify:
        orders = shopify.orders_for_release(order_ids)
        return {"orders": orders, "cost_points": shopify.stats.cost_points}


@task(retries=1, retry_delay_seconds=5)
def release_to_3pl(database_url: str, releases: list[dict[str, Any]]) -> dict[str, Any]:
    """Send each order to the warehouse once (ledger key `3pl:release:<order>`); an order the 3PL
    refuses or cannot take now stays unreleased (the next sync tries again) and is reported."""
    done, failed = [], []
    with threepl_client(load_settings()) as threepl:
        for r in releases:
            try:
                perform_effect(database_url, fulfillment_store.RELEASE_KEY.format(r["order_id"]), "3pl",
                               f"order:{r['order_id']}", {"lines": r["lines"], "flags": r["flags"]},
                               lambda _key, r=r: threepl.send_order(r["order_id"], r["lines"], r["address"],
                                                                    r["flags"]))
                done.append(r["order_id"])
            except ThreePLError as exc:
                failed.append({"order_id": r["order_id"], "error": str(exc)[:300], "status": exc.status})
                if exc.status >= 500:  # the 3PL is down: the rest wait for the next sync, untried
                    failed += [{"order_id": x["order_id"], "error": "not tried: the 3PL is unavailable", "status": 503}
                               for x in releases[len(done) + len(failed):]]
                    break
    return {"released": done, "failed": failed}


@task(retries=1, retry_delay_seconds=5)
def pull_warehouse(database_url: str) -> dict[str, Any]:
    """The 3PL's orders changed since our cursor; their events not yet in the inbox are added
    (a lost push is caught here). The cursor moves only after the rows are stored."""
    since = get_cursor(database_url, "fulfillment.3pl")
    with threepl_client(load_settings()) as threepl:
        views = threepl.updated_since(since)
    new = fulfillment_store.record_warehouse_events(database_url, views)
    if views:
        set_cursor(database_url, "fulfillment.3pl", max(v["updated_at"] for v in views))
    return {"views": [{k: v[k] for k in ("order_id", "name", "status", "flags", "version", "updated_at")}
                      for v in views], "missed_events": new}


@task(retries=3, retry_delay_seconds=2)
def orders_to_mirror(database_url: str, order_ids: list[int], order_names: list[str]) -> dict[str, Any]:
    """Orders whose store snapshot changed since the mirror cursor, plus the given ones (by id: the
    3PL changed them; by name: they have helpdesk tickets)."""
    since = get_cursor(database_url, "fulfillment.mirror")
    changed = fulfillment_store.orders_changed_since(database_url, datetime.fromisoformat(since) if since else None,
                                                    20000)
    have = {c["id"] for c in changed}
    extra = fulfillment_store.orders_by_ids(database_url, [i for i in order_ids if i not in have])
    have |= set(extra)
    named = [o for o in fulfillment_store.orders_by_names(database_url, order_names).values() if o["id"] not in have]
    rows = changed + list(extra.values()) + named
    ids = [r["id"] for r in rows]
    return {"orders": rows, "released": sorted(fulfillment_store.released(database_url, ids)),
            "cursor": max((c["updated_at"] for c in changed), default=None)}


@task(retries=3, retry_delay_seconds=[2, 10, 30])
def warehouse_flags(order_ids: list[int]) -> dict[int, list[str] | None]:
    """order id -> its flags at the 3PL (None: the warehouse does not have it)."""
    out: dict[int, list[str] | None] = {}
    with threepl_client(load_settings()) as threepl:
        for oid in order_ids:
            try:
                out[oid] = list(threepl.get(oid).get("flags") or [])
            except ThreePLError as exc:
                if exc.status != 404:
                    raise
                out[oid] = None
    return out


@task(retries=3, retry_delay_seconds=[2, 10, 30])
def helpdesk_tickets() -> list[dict[str, Any]]:
    with helpdesk_client(load_settings()) as helpdesk:
        return [t for t in helpdesk.tickets() if t.get("order")]


def _digest(*parts) -> str:
    """The change itself (target and what it adds and removes): A -> B -> A is three effects."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:12]


@task(retries=2, retry_delay_seconds=[5, 30])
def apply_signal_plans(database_url: str, plans: list[dict[str, Any]]) -> dict[str, int]:
    """Set the 3PL flags and ticket tags each plan names, through the ledger: the key holds the
    target signal set, so the same change is made once and a later change is a new effect."""
    counts = {"flags": 0, "tickets": 0, "failed": 0}
    settings = load_settings()
    with threepl_client(settings) as threepl, helpdesk_client(settings) as helpdesk:
        for p in plans:
            oid, target = p["order_id"], tuple(p["signals"])
            try:
                if p["flags_add"] or p["flags_remove"]:
                    def flags(_key, p=p):
                        for f in p["flags_add"]:
                            threepl.set_flag(oid, f)
                        for f in p["flags_remove"]:
                            threepl.clear_flag(oid, f)
                        return {"add": p["flags_add"], "remove": p["flags_remove"]}

                    perform_effect(database_url, f"3pl:signals:{oid}:{_digest(target, p['flags_add'], p['flags_remove'])}", "3pl", f"order:{oid}",
                                   {"signals": list(target)}, flags)
                    counts["flags"] += 1
                for tid, add, remove in p["tickets"]:
                    perform_effect(database_url, f"helpdesk:signals:{tid}:{_digest(target, add, remove)}", "helpdesk",
                                   f"order:{oid}", {"ticket": tid, "signals": list(target)},
                                   lambda _key, tid=tid, add=add, remove=remove: helpdesk.retag(tid, list(add),
                                                                                                list(remove)))
                    counts["tickets"] += 1
            except ThreePLError:
                counts["failed"] += 1  # the next sync plans it again
    return counts


@task(retries=3, retry_delay_seconds=2)
def move_mirror_cursor(database_url: str, cursor: datetime | None) -> None:
    if cursor is not None:
        set_cursor(database_url, "fulfillment.mirror", cursor.isoformat())


@task(retries=3, retry_delay_seconds=2)
def our_stages(database_url: str, order_ids: list[int]) -> dict[int, str]:
    from tasks.db.store import stages_of

    return stages_of(database_url, order_ids)


@task(retries=3, retry_delay_seconds=2)
def record_owner_word(database_url: str, changes: list[dict[str, Any]]) -> int:
    return fulfillment_store.reconcile_stages(database_url, changes)
