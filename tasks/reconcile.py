"""Prefect tasks for the reconciliation sweep."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from prefect import task

from config.settings import load_settings
from domain.orders import order_facts, rest_from_graphql
from tasks.clients.factory import shopify_client
from tasks.db import store


@task(retries=2, retry_delay_seconds=5)
def fetch_orders_updated_since(since: datetime | None) -> list[dict[str, Any]]:
    with shopify_client(load_settings()) as shopify:
        return list(shopify.orders_updated_since(since))


@task(retries=3, retry_delay_seconds=2)
def read_cursor(database_url: str, name: str) -> str | None:
    return store.get_cursor(database_url, name)


@task(retries=3, retry_delay_seconds=2)
def write_cursor(database_url: str, name: str, value: str) -> None:
    store.set_cursor(database_url, name, value)


@task(retries=3, retry_delay_seconds=2)
def stored_versions(database_url: str, order_ids: list[int]) -> dict[int, datetime]:
    return store.stored_updated_at(database_url, order_ids)


@task(retries=3, retry_delay_seconds=2)
def feed_into_inbox(database_url: str, shop: str, nodes: list[dict[str, Any]]) -> list[int]:
    """Write each missed order into the inbox exactly as a webhook would arrive (same path)."""
    fed = []
    for node in nodes:
        payload = rest_from_graphql(node)
        facts = order_facts(payload)
        if facts is None:
            continue
        res = store.add_delivery(
            database_url, shop=shop, webhook_id=f"reconcile:{facts.id}:{payload['updated_at']}",
            event_id=None, topic="orders/updated", api_version=None, triggered_at=payload["updated_at"],
            status="accepted", order_id=facts.id, body=json.dumps(payload),
        )
        if not res.duplicate and store.upsert_order(database_url, shop, facts, payload) == "apply":
            fed.append(res.id)
    return fed


@task
def announce_pending(shop: str) -> None:
    from prefect.events import emit_event

    emit_event(event="aftercart.inbox.pending", resource={"prefect.resource.id": f"aftercart.inbox.{shop}"})
