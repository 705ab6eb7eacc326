"""Prefect tasks for SOP 4's exception runs: read the order, the review rows (one IO call each)."""

from __future__ import annotations

from typing import Any

from prefect import task

from config.settings import load_settings
from tasks.clients.factory import shopify_client
from tasks.db import address_store, store
from tasks.db.models import AddressReview, Decision

_RETRY = dict(retries=3, retry_delay_seconds=[2, 10, 30])


@task(**_RETRY)
def load_order(database_url: str, order_id: int) -> dict[str, Any] | None:
    """The order from Shopify (address, shipping line, fulfillment orders) and its stage from our store."""
    with shopify_client(load_settings()) as shopify:
        order = shopify.order_for_address_review(order_id)
    if order is not None:
        order["stage"] = store.stages_of(database_url, [order_id]).get(order_id) or "unfulfilled"
    return order


@task(**_RETRY)
def open_review(database_url: str, review: AddressReview, decision: Decision) -> AddressReview:
    return address_store.open_review(database_url, review, decision)


@task(**_RETRY)
def read_review(database_url: str, review_id: str) -> AddressReview | None:
    return address_store.get_review(database_url, review_id)


@task(**_RETRY)
def active_review(database_url: str, order_id: int) -> AddressReview | None:
    return address_store.active_review(database_url, order_id)


@task(**_RETRY)
def note_review_run(database_url: str, review_id: str, flow_run_id: str) -> None:
    address_store.set_review_run(database_url, review_id, flow_run_id)


@task(**_RETRY)
def set_review_status(database_url: str, review_id: str, status: str) -> None:
    address_store.set_review_status(database_url, review_id, status)


@task(**_RETRY)
def resolve_review(database_url: str, review_id: str, outcome: str, actor: str) -> AddressReview | None:
    return address_store.resolve_review(database_url, review_id, outcome, actor)


@task(retries=2, retry_delay_seconds=2)
def start_address_reviews(orders: list[dict[str, Any]]) -> list[str]:
    """One `address-review #N` run per exception, through the `address-review` deployment; the
    idempotency key (order and address) makes a duplicate trigger return the run it already made."""
    from tasks.launch import launch_many

    return launch_many("address-review/address-review", [
        ({"order_id": o["order_id"], "order_name": o["order_name"]},
         f"address-review {o['order_name']}",  # searchable before it runs
         f"address-review:{o['order_id']}:{o['key']}") for o in orders])


def verify_now(addresses: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    """The online verifier's answers, or None for each address when it is off or failing (a
    verifier outage never blocks an order: the offline verdict stands)."""
    import logging

    from tasks.clients.factory import verifier_client
    from tasks.clients.verifier import VerifierError

    if not addresses:
        return []
    with verifier_client(load_settings()) as verifier:
        if verifier is None:
            return [None] * len(addresses)
        try:
            return verifier.verify(addresses)
        except VerifierError as exc:
            logging.getLogger("aftercart.address").warning("%s; offline verdicts stand", exc)
            return [None] * len(addresses)


@task(retries=1, retry_delay_seconds=2)
def verify_addresses(addresses: list[dict[str, Any]]) -> list[dict[str, Any] | None]:
    return verify_now(addresses)
