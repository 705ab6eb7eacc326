"""What the SOP flows do to an order in the same way: tell the customer, hold and release.

- `tell_customer`: one message through the ledger, in the customer's language, never to an order
  handled by a person (`ac:manual`) or without an email.
- `hold_fulfillment` / `release_holds`: a signal's hold on every fulfillment order that can take
  one (or already has it), released later by the hold ids (never "release all").
"""

from __future__ import annotations

from typing import Any

from domain.messages import pick_language
from flows.runtime import Runtime
from tasks import effects


def customer_language(rt: Runtime, order: dict[str, Any]) -> str:
    country = order.get("country_code") or (order.get("shipping_address") or {}).get("country_code")
    return pick_language(rt.policy, order.get("customer_locale"), country).language


def tell_customer(rt: Runtime, order: dict[str, Any], template: str, key: str, **context: Any) -> None:
    if not order.get("email") or set(order["tags"]) & set(rt.policy.communication.suppress_for_tags):
        return
    effects.send_customer_message(rt.database_url, order["id"], order["email"], template,
                                  customer_language(rt, order),
                                  {"order_name": order["name"], "customer_name": order["email"].split("@")[0],
                                   **context}, effect_key=f"{key}:message:{template}")


def hold_fulfillment(rt: Runtime, order: dict[str, Any], signal: str, notes: str, key: str) -> list[dict[str, str]]:
    """Returns [{fulfillment_order, hold_id}] for the holds placed (or found from an earlier attempt)."""
    holds = []
    for fo in order["fulfillment_orders"]:
        mine = [h for h in fo.get("fulfillmentHolds") or [] if h.get("handle") == signal]
        if mine or "HOLD" in {a["action"] for a in fo.get("supportedActions") or []}:
            h = effects.place_hold(rt.database_url, order["id"], fo["id"], signal, notes,
                                   effect_key=f"{key}:hold:{signal}:{fo['id']}")
            holds.append({"fulfillment_order": fo["id"], "hold_id": h["id"]})
    return holds


def release_holds(rt: Runtime, order: dict[str, Any], holds: list[dict[str, str]], key: str) -> None:
    for h in holds:
        effects.release_hold(rt.database_url, order["id"], h["fulfillment_order"], h["hold_id"],
                             effect_key=f"{key}:release:{h['hold_id']}")


def at_warehouse(order: dict[str, Any]) -> bool:
    w = order.get("warehouse")
    return bool(w) and w.get("status") not in ("shipped", "cancelled")


def hold_everywhere(rt: Runtime, order: dict[str, Any], signal: str, key: str) -> list[dict[str, str]]:
    """A hold while a person decides, in every system: Shopify's fulfillment hold and tag, and the
    warehouse's flag when it has the order (so it stops picking the version being changed)."""
    holds = hold_fulfillment(rt, order, signal, key, key)
    effects.add_tags(rt.database_url, order["id"], [signal], effect_key=f"{key}:tag:{signal}")
    if at_warehouse(order):
        effects.flag_at_3pl(rt.database_url, order["id"], signal, True, effect_key=f"{key}:3pl-flag:{signal}")
    return holds


def lift_everywhere(rt: Runtime, order: dict[str, Any], signal: str, holds: list[dict[str, str]], key: str,
                    warehouse: bool = True) -> None:
    """Lift the hold `hold_everywhere` placed (the warehouse's only when `warehouse`: it keeps an
    order whose new version it has not confirmed)."""
    release_holds(rt, order, holds, key)
    effects.remove_tags(rt.database_url, order["id"], [signal], effect_key=f"{key}:untag:{signal}")
    if warehouse and at_warehouse(order):
        effects.flag_at_3pl(rt.database_url, order["id"], signal, False, effect_key=f"{key}:3pl-unflag:{signal}")
