"""Prefect tasks around the webhook inbox and order stages: one IO call each, no business `if`."""

from __future__ import annotations

from typing import Any

from prefect import task

from tasks.db import store


@task(retries=3, retry_delay_seconds=2)
def load_pending(database_url: str, limit: int) -> list[dict[str, Any]]:
    return [
        {"id": r.id, "topic": r.topic, "order_id": r.order_id, "body": r.body}
        for r in store.pending_deliveries(database_url, limit)
    ]


@task(retries=3, retry_delay_seconds=2)
def current_stages(database_url: str, order_ids: list[int]) -> dict[int, str]:
    return store.stages_of(database_url, order_ids)


@task(retries=3, retry_delay_seconds=2)
def save_stages(database_url: str, stages: dict[int, str]) -> int:
    return store.set_stages(database_url, stages) if stages else 0


@task(retries=3, retry_delay_seconds=2)
def mark_processed(database_url: str, ids: list[int]) -> int:
    return store.mark_processed(database_url, ids)


@task(retries=3, retry_delay_seconds=2)
def address_keys_judged(database_url: str, order_ids: list[int]) -> dict[int, set[str]]:
    return store.address_keys_judged(database_url, order_ids)


@task(retries=3, retry_delay_seconds=2)
def record_decisions(database_url: str, decisions: list[dict]) -> int:
    from tasks.db.models import Decision

    return store.record_decisions(database_url, [Decision(**d) for d in decisions])
