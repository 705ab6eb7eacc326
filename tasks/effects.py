"""Side effects as Prefect tasks, each through the effects ledger (written before the call).

One IO call per task; the effect key is built from business ids by the caller (the flow), so a
re-run after a crash or a suspend, or a duplicate webhook, finds the ledger row and never
applies the effect twice. Refunds also carry the key to Shopify as `@idempotent(key:)`.
"""

from __future__ import annotations

from typing import Any, Callable

from prefect import task

from config.settings import load_settings
from domain.vocab import HOLD_SIGNALS
from tasks.clients.factory import mailer, shopify_client, threepl_client
from tasks.clients.shopify import ShopifyClient
from tasks.db.ledger import perform_effect

def _transient(task, task_run, state) -> bool:
    """Retry what may pass next time; a Shopify userError (the request itself is wrong) fails at once."""
    from tasks.clients.shopify import UserError
    from tasks.clients.threepl import ThreePLError

    try:
        state.result()
    except UserError:
        return False
    except ThreePLError as exc:  # a 4xx from the 3PL (a new version after packing) will not pass later
        return exc.status >= 500 or exc.status == 429
    except Exception:
        return True
    return True


_RETRY = dict(retries=3, retry_delay_seconds=[2, 10, 30], retry_condition_fn=_transient)


def _subject(order_id: int) -> str:
    return f"order:{order_id}"


def _shopify_effect(database_url: str, effect_key: str, kind: str, order_id: int, request: dict[str, Any],
                    act: Callable[[ShopifyClient, str], dict[str, Any]]) -> dict[str, Any]:
    """Run `act(shopify, idempotency_key)` once per effect key, through the ledger."""

    def call(key: str) -> dict[str, Any]:
        with shopify_client(load_settings()) as shopify:
            return act(shopify, key)

    return perform_effect(database_url, effect_key, kind, _subject(order_id), request, call)


@task(**_RETRY)
def place_hold(database_url: str, order_id: int, fulfillment_order_id: str, signal: str, notes: str,
               effect_key: str) -> dict[str, Any]:
    """Hold one fulfillment order with the SOP's own handle (the signal) and its Shopify reason."""
    reason = HOLD_SIGNALS[signal]
    return _shopify_effect(database_url, effect_key, "hold", order_id,
                           {"fulfillment_order": fulfillment_order_id, "handle": signal, "reason": reason},
                           lambda shopify, _key: shopify.hold(order_id, fulfillment_order_id, reason, signal, notes))


@task(**_RETRY)
def release_hold(database_url: str, order_id: int, fulfillment_order_id: str, hold_id: str,
                 effect_key: str) -> dict[str, Any]:
    return _shopify_effect(database_url, effect_key, "release", order_id,
                           {"fulfillment_order": fulfillment_order_id, "hold_id": hold_id},
                           lambda shopify, _key: shopify.release_holds(fulfillment_order_id, [hold_id]))


@task(**_RETRY)
def add_tags(database_url: str, order_id: int, tags: list[str], effect_key: str,
             remove: list[str] | None = None) -> dict[str, Any]:
    """Add `tags`; with `remove`, take those off first in the same request (one aliased mutation)."""
    def act(shopify: ShopifyClient, _key: str) -> dict[str, Any]:
        if remove:
            shopify.swap_tags(order_id, remove, tags)
            return {"tags": tags, "removed": remove}
        shopify.add_tags(order_id, tags)
        return {"tags": tags}

    return _shopify_effect(database_url, effect_key, "tag", order_id,
                           {"add": tags, "remove": remove} if remove else {"add": tags}, act)


@task(**_RETRY)
def remove_tags(database_url: str, order_id: int, tags: list[str], effect_key: str) -> dict[str, Any]:
    def act(shopify: ShopifyClient, _key: str) -> dict[str, Any]:
        shopify.remove_tags(order_id, tags)
        return {"tags": tags}

    return _shopify_effect(database_url, effect_key, "untag", order_id, {"remove": tags}, act)


@task(**_RETRY)
def refund_order(database_url: str, order_id: int, amount: str, gateway: str, note: str,
                 effect_key: str) -> dict[str, Any]:
    """The ledger's idempotency key goes to Shopify as @idempotent(key:): never refunded twice."""

    return _shopify_effect(database_url, effect_key, "refund", order_id, {"amount": amount, "gateway": gateway},
                           lambda shopify, key: shopify.refund(order_id, amount, gateway, key, note))


@task(**_RETRY)
def cancel_order(database_url: str, order_id: int, reason: str, restock: bool, refund: bool,
                 effect_key: str) -> dict[str, Any]:
    def act(shopify: ShopifyClient, _key: str) -> dict[str, Any]:
        o = shopify.cancel_order(order_id, reason=reason, restock=restock, refund=refund)
        return {"cancelledAt": o.get("cancelledAt")}

    return _shopify_effect(database_url, effect_key, "cancel", order_id,
                           {"reason": reason, "restock": restock, "refund": refund}, act)


@task(**_RETRY)
def send_to_3pl(database_url: str, order_id: int, lines: list[dict[str, Any]], address: dict[str, Any],
                flags: list[str], effect_key: str) -> dict[str, Any]:
    def call(_key: str) -> dict[str, Any]:
        with threepl_client(load_settings()) as threepl:
            return threepl.send_order(order_id, lines, address, flags)

    return perform_effect(database_url, effect_key, "3pl", _subject(order_id),
                          {"lines": lines, "flags": flags}, call)


@task(**_RETRY)
def flag_at_3pl(database_url: str, order_id: int, flag: str, on: bool, effect_key: str) -> dict[str, Any]:
    """Set or clear one signal flag on the warehouse order (an `ac:hold:*` flag stops the warehouse)."""
    def call(_key: str) -> dict[str, Any]:
        with threepl_client(load_settings()) as threepl:
            w = threepl.set_flag(order_id, flag) if on else threepl.clear_flag(order_id, flag)
            return {"flags": w.get("flags")}

    return perform_effect(database_url, effect_key, "3pl", _subject(order_id), {"flag": flag, "on": on}, call)


@task(**_RETRY)
def send_mail(database_url: str, order_id: int | None, to: str, subject: str, text: str, html: str | None,
              headers: dict[str, str], effect_key: str) -> dict[str, Any]:
    def call(_key: str) -> dict[str, Any]:
        return {"message_id": mailer(load_settings()).send(to, subject, text, html, headers)}

    return perform_effect(database_url, effect_key, "message", _subject(order_id) if order_id else f"to:{to}",
                          {"to": to, "subject": subject, "headers": headers}, call)


@task(**_RETRY)
def send_customer_message(database_url: str, order_id: int, to: str, template: str, language: str,
                          context: dict[str, Any], effect_key: str) -> dict[str, Any]:
    """Render `template` in `language` and mail it once per effect key; recorded in `messages`."""
    from config.messages import render
    from tasks.db.ledger import record_message

    msg = render(template, language, context)
    headers = {"X-Aftercart-Template": template, "X-Aftercart-Order": str(context.get("order_name", order_id)),
               "Content-Language": language}

    def call(_key: str) -> dict[str, Any]:
        return {"message_id": mailer(load_settings()).send(to, msg.subject, msg.text, msg.html, headers, effect_key)}

    out = perform_effect(database_url, effect_key, "message", _subject(order_id),
                         {"to": to, "template": template, "language": language, "subject": msg.subject}, call)
    record_message(database_url, order_id, template, language, to, msg.subject, effect_key, out.get("message_id"))
    return out


@task(**_RETRY)
def update_shipping_address(database_url: str, order_id: int, address: dict[str, Any],
                            effect_key: str) -> dict[str, Any]:
    """orderUpdate with the new shipping address (Shopify-shaped snake_case fields in, MailingAddressInput out)."""
    fields = {"firstName": address.get("first_name"), "lastName": address.get("last_name"),
              "address1": address.get("address1"), "address2": address.get("address2") or "",
              "city": address.get("city"), "provinceCode": address.get("province_code") or "",
              "zip": address.get("zip"), "countryCode": address.get("country_code"), "phone": address.get("phone")}
    if address.get("name") and not (fields["firstName"] or fields["lastName"]):
        first, _, last = str(address["name"]).partition(" ")
        fields["firstName"], fields["lastName"] = first, last or None
    # every line is sent, empty ones as "": a cleared apartment line must not survive the update
    mailing = {k: v for k, v in fields.items() if v is not None}

    def act(shopify: ShopifyClient, _key: str) -> dict[str, Any]:
        order = shopify.update_order(order_id, shippingAddress=mailing)
        return {"updatedAt": order.get("updatedAt"), "shippingAddress": order.get("shippingAddress")}

    return _shopify_effect(database_url, effect_key, "edit", order_id, {"shippingAddress": mailing}, act)
