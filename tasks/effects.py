"""Side effects as Prefect tasks, each through the effects ledger (written before the call).

One IO call per task; the effect key is built from business ids by the caller (the flow), so a
re-run after a crash or a suspend, or a duplicate webhook, finds the ledger row and never
applies the effect twice. Refunds also carry the key to Shopify as `@idempotent(key:)`.
"""

from __future__ import annotations

from typing import Any

from prefect import task

from config.settings import load_settings
from domain.vocab import HOLD_SIGNALS
from tasks.clients.factory import mailer, shopify_client, threepl_client
from tasks.db.store import perform_effect

_RETRY = dict(retries=3, retry_delay_seconds=[2, 10, 30])


def _subject(order_id: int) -> str:
    return f"order:{order_id}"


@task(**_RETRY)
def place_hold(database_url: str, order_id: int, fulfillment_order_id: str, signal: str, notes: str,
               effect_key: str) -> dict[str, Any]:
    """Hold one fulfillment order with the SOP's own handle (the signal) and its Shopify reason."""
    reason = HOLD_SIGNALS[signal]

    def call(_key: str) -> dict[str, Any]:
        with shopify_client(load_settings()) as shopify:
            return shopify.hold(order_id, fulfillment_order_id, reason, signal, notes)

    return perform_effect(database_url, effect_key, "hold", _subject(order_id),
                          {"fulfillment_order": fulfillment_order_id, "handle": signal, "reason": reason}, call)


@task(**_RETRY)
def release_hold(database_url: str, order_id: int, fulfillment_order_id: str, hold_id: str,
                 effect_key: str) -> dict[str, Any]:
    def call(_key: str) -> dict[str, Any]:
        with shopify_client(load_settings()) as shopify:
            return shopify.release_holds(fulfillment_order_id, [hold_id])

    return perform_effect(database_url, effect_key, "release", _subject(order_id),
                          {"fulfillment_order": fulfillment_order_id, "hold_id": hold_id}, call)


@task(**_RETRY)
def add_tags(database_url: str, order_id: int, tags: list[str], effect_key: str) -> dict[str, Any]:
    def call(_key: str) -> dict[str, Any]:
        with shopify_client(load_settings()) as shopify:
            shopify.add_tags(order_id, tags)
        return {"tags": tags}

    return perform_effect(database_url, effect_key, "tag", _subject(order_id), {"add": tags}, call)


@task(**_RETRY)
def remove_tags(database_url: str, order_id: int, tags: list[str], effect_key: str) -> dict[str, Any]:
    def call(_key: str) -> dict[str, Any]:
        with shopify_client(load_settings()) as shopify:
            shopify.remove_tags(order_id, tags)
        return {"tags": tags}

    return perform_effect(database_url, effect_key, "untag", _subject(order_id), {"remove": tags}, call)


@task(**_RETRY)
def refund_order(database_url: str, order_id: int, amount: str, gateway: str, note: str,
                 effect_key: str) -> dict[str, Any]:
    """The ledger's idempotency key goes to Shopify as @idempotent(key:): never refunded twice."""

    def call(key: str) -> dict[str, Any]:
        with shopify_client(load_settings()) as shopify:
            return shopify.refund(order_id, amount, gateway, key, note)

    return perform_effect(database_url, effect_key, "refund", _subject(order_id),
                          {"amount": amount, "gateway": gateway}, call)


@task(**_RETRY)
def cancel_order(database_url: str, order_id: int, reason: str, restock: bool, refund: bool,
                 effect_key: str) -> dict[str, Any]:
    def call(_key: str) -> dict[str, Any]:
        with shopify_client(load_settings()) as shopify:
            o = shopify.cancel_order(order_id, reason=reason, restock=restock, refund=refund)
        return {"cancelledAt": o.get("cancelledAt")}

    return perform_effect(database_url, effect_key, "cancel", _subject(order_id),
                          {"reason": reason, "restock": restock, "refund": refund}, call)


@task(**_RETRY)
def send_to_3pl(database_url: str, order_id: int, lines: list[dict[str, Any]], address: dict[str, Any],
                flags: list[str], effect_key: str) -> dict[str, Any]:
    def call(_key: str) -> dict[str, Any]:
        with threepl_client(load_settings()) as threepl:
            return threepl.send_order(order_id, lines, address, flags)

    return perform_effect(database_url, effect_key, "3pl", _subject(order_id),
                          {"lines": lines, "flags": flags}, call)


@task(**_RETRY)
def send_mail(database_url: str, order_id: int | None, to: str, subject: str, text: str, html: str | None,
              headers: dict[str, str], effect_key: str) -> dict[str, Any]:
    def call(_key: str) -> dict[str, Any]:
        return {"message_id": mailer(load_settings()).send(to, subject, text, html, headers)}

    return perform_effect(database_url, effect_key, "message", _subject(order_id) if order_id else f"to:{to}",
                          {"to": to, "subject": subject, "headers": headers}, call)
