"""Prefect tasks for SOP 2's runs (one IO call each) and the effects of an applied edit."""

from __future__ import annotations

from typing import Any

from prefect import task

from config.settings import load_settings
from tasks.clients.factory import shopify_client, threepl_client
from tasks.clients.shopify import ShopifyClient
from tasks.clients.threepl import ThreePLError
from tasks.db import edit_store, store
from tasks.db.models import Decision, EditRequest
from tasks.effects import _RETRY, _shopify_effect

@task(**_RETRY)
def load_order(database_url: str, order_id: int, skus: list[str]) -> dict[str, Any] | None:
    """The order, the variants the request names, the 3PL's status and what events told us."""
    with shopify_client(load_settings()) as shopify:
        order = shopify.order_for_edit(order_id)
        if order is None:
            return None
        order["variants"] = shopify.variants_by_sku([*skus, *(li["sku"] for li in order["lines"])])
    order["warehouse"] = warehouse_order(order_id)
    order["recorded_stage"] = store.stages_of(database_url, [order_id]).get(order_id)
    return order


def warehouse_order(order_id: int) -> dict[str, Any] | None:
    with threepl_client(load_settings()) as threepl:
        try:
            return threepl.get(order_id)
        except ThreePLError as exc:
            if exc.status == 404:
                return None
            raise


@task(**_RETRY)
def open_request(database_url: str, request: EditRequest) -> EditRequest:
    return edit_store.open_request(database_url, request)


@task(**_RETRY)
def update_request(database_url: str, request_id: int, decision: Decision | None = None, **fields: Any) -> EditRequest:
    return edit_store.update_request(database_url, request_id, decision, **fields)


@task(**_RETRY)
def others_waiting(database_url: str, order_id: int, request_id: int) -> bool:
    return edit_store.others_waiting(database_url, order_id, request_id)


@task(retries=0)
def acquire_order(database_url: str, order_id: int, holder: str) -> None:
    edit_store.acquire_order(database_url, order_id, holder)


@task(**_RETRY)
def release_order(database_url: str, order_id: int, holder: str) -> None:
    edit_store.release_order(database_url, order_id, holder)


@task(**_RETRY)
def update_contact(database_url: str, order_id: int, email: str | None, phone: str | None,
                   effect_key: str) -> dict[str, Any]:
    fields = {k: v for k, v in (("email", email), ("phone", phone)) if v}

    def act(shopify: ShopifyClient, _key: str) -> dict[str, Any]:
        o = shopify.update_order(order_id, **fields)
        return {"email": o.get("email"), "phone": o.get("phone")}

    return _shopify_effect(database_url, effect_key, "edit", order_id, fields, act)


@task(**_RETRY)
def edit_items(database_url: str, order_id: int, quantities: dict[str, int], add: list[list[Any]],
               shipping: str | None, effect_key: str) -> dict[str, Any]:
    """One Shopify order edit (begin, set quantities, add variants, shipping line, commit)."""
    def act(shopify: ShopifyClient, _key: str) -> dict[str, Any]:
        o = shopify.edit_order(order_id, quantities=quantities, add_variants=[(v, q) for v, q in add],
                               shipping=(None, shipping, {"amount": "0.00", "currencyCode": "USD"}) if shipping
                               else None, staff_note=effect_key)
        return {"committed": True, "updatedAt": (o or {}).get("updatedAt")}

    return _shopify_effect(database_url, effect_key, "edit", order_id,
                           {"quantities": quantities, "add": add, "shipping": shipping}, act)
