"""SOP 7's reads and writes on the store, a batch at a time."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlmodel import select

from tasks.db.engine import session
from tasks.db.models import Effect, Order
from tasks.db.store import add_delivery, as_utc

RELEASE_KEY = "3pl:release:{}"


def release_candidates(url: str, created_before: datetime, limit: int) -> list[int]:
    """Unfulfilled orders placed before `created_before` that we have not released yet."""
    with session(url) as s:
        ids = list(s.exec(select(Order.id).where(Order.stage == "unfulfilled", Order.created_at <= created_before)
                          .order_by(Order.id).limit(limit)).all())
        if not ids:
            return []
        done = set(s.exec(select(Effect.effect_key).where(
            Effect.effect_key.in_([RELEASE_KEY.format(i) for i in ids]), Effect.status == "confirmed")).all())
    return [i for i in ids if RELEASE_KEY.format(i) not in done]


def released(url: str, order_ids: list[int]) -> set[int]:
    with session(url) as s:
        keys = set(s.exec(select(Effect.effect_key).where(
            Effect.effect_key.in_([RELEASE_KEY.format(i) for i in order_ids]), Effect.status == "confirmed")).all())
    return {i for i in order_ids if RELEASE_KEY.format(i) in keys}


def orders_changed_since(url: str, since: datetime | None, limit: int) -> list[dict[str, Any]]:
    """Orders whose snapshot changed since `since` (their tags may carry new signals)."""
    with session(url) as s:
        q = select(Order.id, Order.name, Order.tags, Order.stage, Order.updated_at)
        if since is not None:
            q = q.where(Order.updated_at > since)
        rows = s.exec(q.order_by(Order.updated_at).limit(limit)).all()
    return [{"id": r[0], "name": r[1], "tags": list(r[2] or []), "stage": r[3], "updated_at": as_utc(r[4])}
            for r in rows]


def orders_by_ids(url: str, ids: list[int]) -> dict[int, dict[str, Any]]:
    with session(url) as s:
        rows = s.exec(select(Order.id, Order.name, Order.tags, Order.stage).where(Order.id.in_(ids))).all()
    return {r[0]: {"id": r[0], "name": r[1], "tags": list(r[2] or []), "stage": r[3]} for r in rows}


def orders_by_names(url: str, names: list[str]) -> dict[str, dict[str, Any]]:
    with session(url) as s:
        rows = s.exec(select(Order.id, Order.name, Order.tags, Order.stage).where(Order.name.in_(names))).all()
    return {r[1]: {"id": r[0], "name": r[1], "tags": list(r[2] or []), "stage": r[3]} for r in rows}


def record_warehouse_events(url: str, views: list[dict[str, Any]]) -> int:
    """Each event in the 3PL's history we have not received as a push goes into the inbox (same id
    as its push, so a push that did arrive makes this a duplicate): the drain handles both alike."""
    new = 0
    for w in views:
        for h in w.get("history") or []:
            if not h.get("event_id"):
                continue
            body = {"event": h["what"], "event_id": h["event_id"], "source": "sync",
                    "order": {"order_id": w["order_id"], "name": w.get("name"), "status": h.get("status"),
                              "version": h.get("version"), "updated_at": h.get("at")}}
            res = add_delivery(url, shop="3pl", webhook_id=f"3pl:{h['event_id']}", topic=f"3pl/{h['what']}",
                               status="accepted", order_id=w["order_id"], body=json.dumps(body))
            new += 0 if res.duplicate else 1
    return new
