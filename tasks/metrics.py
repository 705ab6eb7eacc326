from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import task

from tasks.db import address_store, comms_store, edit_store, fulfillment_store, store


@task(retries=3, retry_delay_seconds=2)
def gather_counts(database_url: str, since: datetime) -> dict[str, list[dict[str, Any]]]:
    return store.grouped_counts(database_url, since)


@task(retries=3, retry_delay_seconds=2)
def gather_address_metrics(database_url: str, since: datetime) -> list[dict[str, Any]]:
    return address_store.address_metrics(database_url, since)


@task(retries=3, retry_delay_seconds=2)
def gather_edit_metrics(database_url: str, since: datetime) -> list[dict[str, Any]]:
    return edit_store.edit_metrics(database_url, since)


@task(retries=3, retry_delay_seconds=2)
def gather_message_metrics(database_url: str, since: datetime) -> dict[str, list[dict[str, Any]]]:
    return comms_store.message_metrics(database_url, since)


@task(retries=3, retry_delay_seconds=2)
def gather_fulfillment_metrics(database_url: str, since: datetime) -> list[dict[str, Any]]:
    return fulfillment_store.fulfillment_metrics(database_url, since)
