"""SOP 7 decisions, pure: release, one signal in three systems, the owner's word by stage."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from config.policy_loader import load_policy
from domain.fulfillment import (FulfillmentOrderFacts as FO, ReleaseFacts, decide_release, mirror_signals,
                                owner_word)

POLICY = load_policy()
PLACED = datetime(2026, 11, 27, 9, 0, tzinfo=timezone.utc)
LATER = PLACED + timedelta(minutes=61)


def facts(**over):
    base = dict(order_id=7, name="#1042", created_at=PLACED, tags=(), order_type="standard", cancelled=False,
                at_warehouse=False, fulfillment_orders=(FO("fo1", "OPEN", (), (("MUG", 2),)),))
    base.update(over)
    return ReleaseFacts(**base)


@pytest.mark.parametrize("over, now, action, why", [
    ({}, LATER, "release", "no hold"),
    ({}, PLACED + timedelta(minutes=59), "wait", "edit window is open"),
    ({"fulfillment_orders": (FO("fo1", "ON_HOLD", ("ac:hold:address",), (("MUG", 2),)),)}, LATER, "wait", "held"),
    ({"tags": ("ac:hold:inventory",)}, LATER, "wait", "ac:hold:inventory"),
    ({"tags": ("ac:manual",)}, LATER, "person", "ac:manual"),
    ({"order_type": "marketplace"}, LATER, "person", "marketplace"),
    ({"cancelled": True}, LATER, "skip", "cancelled"),
    ({"at_warehouse": True}, LATER, "skip", "already has"),
    ({"fulfillment_orders": (FO("fo1", "SCHEDULED", (), (("VASE", 1),)),)}, LATER, "wait", "scheduled"),
])
def test_release_decision(over, now, action, why):
    d = decide_release(facts(**over), POLICY, now)
    assert d.action == action and why in " ".join(d.reasons)


def test_a_mixed_preorder_releases_its_open_part_only():
    d = decide_release(facts(fulfillment_orders=(FO("fo1", "OPEN", (), (("MUG", 2), ("CAP", 1))),
                                                  FO("fo2", "SCHEDULED", (), (("VASE", 1),)))), POLICY, LATER)
    assert d.action == "release" and d.lines == [{"sku": "CAP", "quantity": 1}, {"sku": "MUG", "quantity": 2}]
    assert "split" in d.reasons[1]


def test_signals_mirror_shopify_exactly_and_leave_other_tags_alone():
    p = mirror_signals(7, ["ac:edited:address", "vip", "ac:review:ops"], ["ac:hold:address", "fragile"],
                       [(1, ["ac:review:ops", "billing"]), (2, ["ac:edited:address", "ac:review:ops"])])
    assert p.signals == ("ac:edited:address", "ac:review:ops")
    assert (p.flags_add, p.flags_remove) == (("ac:edited:address", "ac:review:ops"), ("ac:hold:address",))
    assert p.tickets == ((1, ("ac:edited:address",), ()),)
    assert mirror_signals(7, ["vip"], None, []).empty  # not at the warehouse, no ticket


@pytest.mark.parametrize("ours, theirs, recorded", [
    ("picking", "received", "released"),   # a new version sent it back to the start of the pick
    ("released", "packed", "packed"),
    ("unfulfilled", "received", None),     # the inbox brings that event
    ("in_transit", "packed", None),        # the carrier owns it now
    ("packed", "packed", None),
    ("cancelled", "picking", None),
])
def test_the_owner_of_the_stage_wins(ours, theirs, recorded):
    assert owner_word(ours, theirs, POLICY)[0] == recorded
