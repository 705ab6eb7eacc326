"""SOP 2's pure decision: every cell of the stage table, the always-approval cases, bad input."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from config.policy_loader import load_policy
from domain.order_edit import EditFacts, Line, Variant, decide_edit

POLICY = load_policy()
T0 = datetime(2026, 11, 27, 9, 2, tzinfo=timezone.utc)
ADDR = {"name": "Ana Ruiz", "address1": "1 Market St", "address2": "", "city": "San Francisco",
        "province_code": "CA", "zip": "94105", "country_code": "US"}
LINES = (Line("gid://shopify/LineItem/1", "TEE-M", 2, "gid://shopify/Product/1"),
         Line("gid://shopify/LineItem/2", "KIT-1", 1, "gid://shopify/Product/2", ("kit",)),
         Line("gid://shopify/LineItem/3", "VAPE", 1, "gid://shopify/Product/3", ("regulated",)))
VARIANTS = {"TEE-L": Variant("gid://shopify/ProductVariant/11", "TEE-L", "gid://shopify/Product/1", (), 5),
            "TEE-XL": Variant("gid://shopify/ProductVariant/12", "TEE-XL", "gid://shopify/Product/1", (), 0),
            "MUG": Variant("gid://shopify/ProductVariant/20", "MUG", "gid://shopify/Product/9", (), 50),
            "TEE-M": Variant("gid://shopify/ProductVariant/10", "TEE-M", "gid://shopify/Product/1", (), 3)}
REQ = {
    "contact_change": {"kind": "contact_change", "email": "new@example.com"},
    "address_unit_change": {"kind": "address_change", "address": {**ADDR, "address2": "Apt 4"}},
    "address_change": {"kind": "address_change", "address": {**ADDR, "address1": "2 Market St"}},
    "variant_swap": {"kind": "variant_swap", "line": "TEE-M", "sku": "TEE-L"},
    "quantity_decrease": {"kind": "quantity_change", "line": "TEE-M", "quantity": 1},
    "remove_item": {"kind": "remove_item", "line": "TEE-M"},
    "shipping_method_change": {"kind": "shipping_method_change", "shipping": "Express"},
    "add_item": {"kind": "add_item", "sku": "MUG", "quantity": 1},
    "quantity_increase": {"kind": "quantity_change", "line": "TEE-M", "quantity": 3},
    "bundle_line_edit": {"kind": "quantity_change", "line": "KIT-1", "quantity": 2},
}


def facts(stage, minutes=5, **kw):
    return EditFacts(stage=stage, placed_at=T0, lines=LINES, address=ADDR, variants=VARIANTS, **kw), \
        T0 + timedelta(minutes=minutes)


# (stage, minutes after placing) -> expected (outcome, role, hold) per class, straight from POLICY.md
A, D = ("apply", None, None), ("deny", None, None)
OPS, OPS_HELD = ("approval", "ops", None), ("approval", "ops", "ac:hold:approval")
SUPPORT = ("approval", "support", None)
TABLE = {
    ("unfulfilled", 5): {"contact_change": A, "address_unit_change": A, "address_change": A, "variant_swap": A,
                         "quantity_decrease": A, "remove_item": A, "shipping_method_change": OPS, "add_item": OPS,
                         "quantity_increase": OPS, "bundle_line_edit": OPS},
    ("unfulfilled", 90): {"contact_change": A, "address_unit_change": OPS_HELD, "address_change": OPS_HELD,
                          "variant_swap": OPS_HELD, "remove_item": OPS_HELD, "add_item": OPS_HELD},
    ("released", 5): {"contact_change": A, "address_unit_change": OPS_HELD, "address_change": OPS_HELD,
                      "quantity_decrease": OPS_HELD, "shipping_method_change": OPS_HELD, "bundle_line_edit": OPS_HELD},
    ("picking", 20): {"contact_change": A, "address_unit_change": OPS_HELD, "variant_swap": OPS_HELD,
                      "add_item": OPS_HELD},
    ("packed", 30): {"contact_change": A, "address_unit_change": SUPPORT, "address_change": SUPPORT,
                     "variant_swap": D, "remove_item": D, "add_item": D, "quantity_increase": D},
    ("label_created", 30): {"contact_change": A, "address_change": SUPPORT, "shipping_method_change": D},
    ("shipped", 600): {"contact_change": A, "address_unit_change": D, "address_change": D, "variant_swap": D,
                       "add_item": D},
    ("delivered", 6000): {"contact_change": A, "address_change": D, "remove_item": D},
}


@pytest.mark.parametrize("cell", [(st, m, c) for (st, m), row in TABLE.items() for c in row])
def test_every_cell_of_the_stage_table(cell):
    stage, minutes, cls = cell
    f, now = facts(stage, minutes)
    d = decide_edit(REQ[cls], f, POLICY, now, address_verdict="valid" if cls.startswith("address") else None)
    assert d.edit_class == cls
    assert (d.outcome, d.role, d.hold) == TABLE[(stage, minutes)][cls], d.reasons


def test_inside_the_window_medium_edits_apply_only_when_the_result_validates():
    f, now = facts("unfulfilled")
    assert decide_edit(REQ["address_change"], f, POLICY, now, "review").outcome == "approval"
    assert decide_edit(REQ["address_change"], f, POLICY, now, "review").role == "support"
    d = decide_edit({"kind": "variant_swap", "line": "TEE-M", "sku": "TEE-XL"}, f, POLICY, now)
    assert (d.outcome, d.role) == ("approval", "support") and "in stock" in d.reasons[-2]


@pytest.mark.parametrize("kw, request_kind", [
    ({"order_type": "subscription"}, "contact_change"),
    ({"risk": "high"}, "address_unit_change"),
    ({"payment_review": True}, "variant_swap"),
    ({}, "regulated"),
])
def test_always_approval_by_ops_before_shipping(kw, request_kind):
    f, now = facts("unfulfilled", **kw)
    req = {"kind": "remove_item", "line": "VAPE"} if request_kind == "regulated" else REQ[request_kind]
    d = decide_edit(req, f, POLICY, now, "valid")
    assert (d.outcome, d.role, d.rule) == ("approval", "ops", "always_approval")
    f, now = facts("shipped", 600, **kw)
    assert decide_edit(req, f, POLICY, now, "valid").outcome in ("deny", "apply")  # from shipped on: the table


@pytest.mark.parametrize("req, error", [
    ({"kind": "teleport"}, "unknown request kind"),
    ("not a dict", "a request is an object"),
    ({"kind": "quantity_change", "line": "NOPE", "quantity": 1}, "is not on the order"),
    ({"kind": "quantity_change", "line": "TEE-M", "quantity": -1}, "0 or more"),
    ({"kind": "quantity_change", "line": "TEE-M", "quantity": "2"}, "whole number"),
    ({"kind": "quantity_change", "line": "TEE-M", "quantity": 9}, "in stock"),
    ({"kind": "variant_swap", "line": "TEE-M", "sku": "MUG"}, "another product"),
    ({"kind": "add_item", "sku": "GHOST"}, "unknown product variant"),
    ({"kind": "add_item", "sku": "MUG", "quantity": 51}, "in stock"),
    ({"kind": "contact_change"}, "needs an email or a phone"),
    ({"kind": "address_change", "address": ADDR}, "the same as the order's"),
])
def test_bad_requests_are_refused_with_a_clear_error(req, error):
    f, now = facts("unfulfilled")
    d = decide_edit(req, f, POLICY, now)
    assert d.outcome == "refuse" and error in d.reasons[0]


def test_a_cancelled_order_and_an_invalid_address_are_refused():
    f, now = facts("unfulfilled", cancelled=True)
    assert decide_edit(REQ["contact_change"], f, POLICY, now).reasons == ("the order is cancelled",)
    f, now = facts("unfulfilled")
    assert decide_edit(REQ["address_change"], f, POLICY, now, "invalid").reasons == ("the new address fails validation",)
