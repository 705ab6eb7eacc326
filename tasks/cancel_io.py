"""Prefect tasks for SOP 3's runs: read the order, the request rows, the warehouse (one IO call each)."""

from __future__ import annotations

from typing import Any

from prefect import task

from config.settings import load_settings
from tasks.clients.factory import shopify_client, threepl_client
from tasks.clients.threepl import ThreePLError
from tasks.db import cancel_store, store
from tasks.db.models import CancelRequest, Decision
from tasks.effects import _RETRY, _subject
from tasks.db.ledger import perform_effect


@task(**_RETRY)
def load_order(database_url: str, order_id: int) -> dict[str, Any] | None:
    """The order from Shopify and its stage from our store (Shopify's fulfilment status when the
    store has not seen the order)."""
    with shopify_client(load_settings()) as shopify:
        order = shopify.order_for_cancellation(order_id)
    if order is not None:
        stage = store.stages_of(database_url, [order_id]).get(order_id)
        if stage is None:
            stage = {"FULFILLED": "shipped", "PARTIALLY_FULFILLED": "shipped"}.get(order["fulfillment_status"],
                                                                                    "unfulfilled")
        order["stage"] = stage
    return order


def _run_gone(run_id: str | None) -> bool:
    """Whether the run that owns a request can no longer serve it (finished, crashed, cancelled)."""
    if not run_id:
        return True
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as c:
            state = c.read_flow_run(run_id).state
    except Exception:  # a run the server does not know is gone
        return True
    return state is None or state.is_final()


@task(**_RETRY)
def open_or_join(database_url: str, request: CancelRequest) -> tuple[CancelRequest, bool]:
    return cancel_store.open_or_join(database_url, request, _run_gone)


@task(**_RETRY)
def record_refused(database_url: str, request: CancelRequest, error: str) -> CancelRequest:
    return cancel_store.record_refused(database_url, request, error)


@task(**_RETRY)
def decide_request(database_url: str, request_id: int, decision: Decision, **fields: Any) -> CancelRequest:
    return cancel_store.decide_request(database_url, request_id, decision, **fields)


@task(**_RETRY)
def update_request(database_url: str, request_id: int, approval_effect: tuple[str, dict[str, Any]] | None = None,
                   **fields: Any) -> CancelRequest:
    return cancel_store.update_request(database_url, request_id, approval_effect, **fields)


@task(**_RETRY)
def warehouse_has(order_id: int) -> bool:
    with threepl_client(load_settings()) as threepl:
        try:
            threepl.get(order_id)
            return True
        except ThreePLError as exc:
            if exc.status == 404:
                return False
            raise


@task(**_RETRY)
def pull_back(database_url: str, order_id: int, effect_key: str) -> dict[str, Any]:
    """Ask the 3PL to pull the order back (once per effect key); its answer is returned."""
    def call(_key: str) -> dict[str, Any]:
        with threepl_client(load_settings()) as threepl:
            return threepl.request_cancel(order_id)

    return perform_effect(database_url, effect_key, "3pl_cancel", _subject(order_id), {}, call)


@task(**_RETRY)
def gather_report(database_url: str, start, end) -> dict[str, list[dict[str, Any]]]:
    return cancel_store.cancellation_report(database_url, start, end)
