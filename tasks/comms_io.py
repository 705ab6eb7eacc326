"""Prefect tasks around SOP 1's records and reads: one IO call each, a whole batch at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task

from config.settings import load_settings
from tasks.clients.factory import shopify_client
from tasks.db import comms_store


@task(retries=3, retry_delay_seconds=2)
def load_message_state(database_url: str, order_ids: list[int]) -> dict[str, Any]:
    """For these orders: latest snapshots and stages, SOP 1 state (payment pending, follow-up), parcels."""
    comms = comms_store.comms_of(database_url, order_ids)
    parcels = comms_store.parcels_of_orders(database_url, order_ids)
    return {
        **comms_store.order_snapshots(database_url, order_ids),
        "comms": {oid: {"payment_pending": c.payment_pending, "followup_status": c.followup_status}
                  for oid, c in comms.items()},
        "parcels": {fid: {"fulfillment_id": p.fulfillment_id, "order_id": p.order_id, "stage": p.stage,
                          "updated_at": p.updated_at, "tracking_number": p.tracking_number, "lines": p.lines}
                    for fid, p in parcels.items()},
    }


@task(retries=3, retry_delay_seconds=2)
def save_message_state(database_url: str, parcels: list[dict[str, Any]], comms: dict[int, dict[str, Any]]) -> int:
    return comms_store.save_parcels(database_url, parcels) + comms_store.save_comms(database_url, comms)


@task(retries=3, retry_delay_seconds=[2, 10, 30])
def product_tags_by_sku(skus: list[str]) -> dict[str, list[str]]:
    """sku -> its product's tags (care notes for `fragile`), read from Shopify 50 skus per query."""
    wanted = sorted({s for s in skus if s})
    out: dict[str, list[str]] = {}
    with shopify_client(load_settings()) as shopify:
        for i in range(0, len(wanted), 50):
            for sku, v in shopify.variants_by_sku(wanted[i:i + 50]).items():
                out[sku] = list(v["product_tags"])
    return out


@task(retries=3, retry_delay_seconds=2)
def due_followups(database_url: str, now: datetime, limit: int) -> dict[str, Any]:
    ids = comms_store.due_followups(database_url, now, limit)
    return {"order_ids": ids, **comms_store.order_snapshots(database_url, ids),
            "open": comms_store.open_items(database_url, ids)}


@task(retries=3, retry_delay_seconds=[2, 10, 30])
def open_returns(order_ids: list[int]) -> dict[int, int]:
    """order id -> 1 when Shopify says a return is requested or in progress (one query per 50 orders)."""
    out: dict[int, int] = {}
    with shopify_client(load_settings()) as shopify:
        for i in range(0, len(order_ids), 50):
            out.update(shopify.open_returns(order_ids[i:i + 50]))
    return out


@task(retries=3, retry_delay_seconds=2)
def late_parcel_candidates(database_url: str, shipped_before: datetime, limit: int) -> dict[str, Any]:
    """Undelivered parcels that left before `shipped_before`, the messages already sent for them,
    and their orders' snapshots."""
    from sqlmodel import select

    from tasks.db.engine import session
    from tasks.db.models import Effect

    parcels = comms_store.undelivered_parcels(database_url, shipped_before, limit)
    keys = [f"msg:{p.order_id}:delay_notice:{p.fulfillment_id}" for p in parcels]
    with session(database_url) as s:
        sent = set(s.exec(select(Effect.effect_key).where(Effect.effect_key.in_(keys))).all()) if keys else set()
    return {"parcels": [{"fulfillment_id": p.fulfillment_id, "order_id": p.order_id, "stage": p.stage,
                         "updated_at": p.updated_at, "shipped_at": p.shipped_at, "tracking_number": p.tracking_number,
                         "lines": p.lines} for p in parcels
                        if f"msg:{p.order_id}:delay_notice:{p.fulfillment_id}" not in sent],
            **comms_store.order_snapshots(database_url, [p.order_id for p in parcels])}
