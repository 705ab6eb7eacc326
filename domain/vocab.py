"""The shared vocabularies of DESIGN.md: stages, signals, templates, request kinds.

Plain constants, so every layer (domain, flows, sandbox, tests) speaks the same words.
Shopify enum values are copied from the 2026-10 Admin schema; a test checks them against it.
"""

from __future__ import annotations

# Order stage, in order of progress, then the side states.
STAGES: tuple[str, ...] = (
    "unfulfilled",
    "released",
    "picking",
    "packed",
    "label_created",
    "shipped",
    "in_transit",
    "out_for_delivery",
    "delivered",
)
SIDE_STAGES: tuple[str, ...] = ("on_hold", "cancelled", "failed_delivery", "returned")
ALL_STAGES: frozenset[str] = frozenset(STAGES + SIDE_STAGES)

# Exception signals, identical as Shopify tag, 3PL flag and helpdesk tag.
HOLD_SIGNALS: dict[str, str] = {
    "ac:hold:address": "INCORRECT_ADDRESS",
    "ac:hold:fraud": "HIGH_RISK_OF_FRAUD",
    "ac:hold:inventory": "INVENTORY_OUT_OF_STOCK",
    "ac:hold:edit-window": "OTHER",
    "ac:hold:approval": "OTHER",
}
OTHER_SIGNALS: frozenset[str] = frozenset(
    {
        "ac:edited:address",
        "ac:edited:items",
        "ac:edited:shipping",
        "ac:edited:contact",
        "ac:cancel:requested",
        "ac:cancel:approved",
        "ac:cancel:denied",
        "ac:review:support",
        "ac:review:ops",
        "ac:review:management",
        "ac:manual",
    }
)
SIGNALS: frozenset[str] = frozenset(HOLD_SIGNALS) | OTHER_SIGNALS

TEMPLATES: frozenset[str] = frozenset(
    {
        "order_confirmation",
        "payment_confirmed",
        "fulfillment_started",
        "shipped",
        "out_for_delivery",
        "delivered",
        "post_delivery_followup",
        "delay_notice",
        "address_confirm_request",
        "address_updated",
        "address_rejected",
        "edit_approved",
        "edit_denied",
        "cancellation_received",
        "cancellation_approved",
        "cancellation_denied",
    }
)

# Customer request kinds as they arrive (scenario format, self-serve, triage).
REQUEST_KINDS: frozenset[str] = frozenset(
    {
        "contact_change",
        "address_change",
        "shipping_method_change",
        "quantity_change",
        "variant_swap",
        "add_item",
        "remove_item",
        "cancel",
    }
)

# What the edit SOP tiers: a request kind refined by what it changes.
EDIT_CLASSES: frozenset[str] = frozenset(
    {
        "contact_change",
        "address_unit_change",  # address_change touching only address2
        "address_change",
        "shipping_method_change",
        "quantity_decrease",
        "quantity_increase",
        "variant_swap",
        "add_item",
        "remove_item",
        "bundle_line_edit",
    }
)

TICKET_INTENTS: frozenset[str] = frozenset(
    {
        "address_change",
        "cancel_order",
        "where_is_my_order",
        "missing_item",
        "damaged_item",
        "wrong_item",
        "refund_follow_up",
        "contact_change",
        "other",
    }
)
TICKET_ROUTES: tuple[str, ...] = ("self_service", "support", "operations", "management")
CHANNELS: frozenset[str] = frozenset({"self_service", "email", "chat", "social", "phone"})
ORDER_TYPES: frozenset[str] = frozenset(
    {"standard", "preorder", "gift", "subscription", "digital", "wholesale", "marketplace"}
)
RISK_LEVELS: tuple[str, ...] = ("low", "medium", "high")

# Shopify Admin 2026-10 enums (checked against ../shared/shopify by tests/test_vocab_schema.py).
SHOPIFY_HOLD_REASONS: frozenset[str] = frozenset(
    {
        "AWAITING_PAYMENT",
        "HIGH_RISK_OF_FRAUD",
        "INCORRECT_ADDRESS",
        "INVENTORY_OUT_OF_STOCK",
        "UNKNOWN_DELIVERY_DATE",
        "OTHER",
        "AWAITING_RETURN_ITEMS",
        "ONLINE_STORE_POST_PURCHASE_CROSS_SELL",
    }
)
SHOPIFY_CANCEL_REASONS: frozenset[str] = frozenset(
    {"CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"}
)
