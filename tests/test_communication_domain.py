"""SOP 1 and 8 decisions, pure: which message an event deserves (or none, and why), parcels,
payment capture, the follow-up's due time in the market's time zone and its suppression."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from config.policy_loader import load_policy
from domain.communication import (OrderEvent, decide_followup, decide_message, followup_due, message_order,
                                  order_events, shipment_event)

POLICY = load_policy()
NOW = datetime(2026, 11, 26, 15, tzinfo=timezone.utc)


def order(stage="unfulfilled", tags="", locale=None, country="US", cancelled=False, email="ana@example.com",
          financial="paid"):
    return message_order({"id": 7, "name": "#1042", "email": email, "customer_locale": locale, "tags": tags,
                          "cancelled_at": "2026-11-26T10:00:00Z" if cancelled else None, "financial_status": financial,
                          "shipping_address": {"country_code": country, "first_name": "Ana"}, "line_items": []}, stage)


@pytest.mark.parametrize("event, stage, parcel_stage, template", [
    ("order_placed", "unfulfilled", None, "order_confirmation"),
    ("order_placed", "shipped", None, None),                 # processed after it shipped: the shipped mail says it
    ("released", "released", None, "fulfillment_started"),
    ("released", "picking", None, "fulfillment_started"),
    ("released", "shipped", None, None),
    ("shipped", "shipped", "shipped", "shipped"),
    ("shipped", "in_transit", "in_transit", "shipped"),       # the create event came with the in-transit one
    ("shipped", "delivered", "delivered", None),              # a late `shipped` after delivery
    ("out_for_delivery", "delivered", "delivered", None),     # out_for_delivery after delivered
    ("out_for_delivery", "out_for_delivery", "out_for_delivery", "out_for_delivery"),
    ("delivered", "delivered", "delivered", "delivered"),
    ("delayed", "in_transit", "in_transit", "delay_notice"),
    ("delayed", "delivered", "delivered", None),
    # a split order: parcel 2 ships after parcel 1 was delivered; the parcel's own stage decides
    ("shipped", "delivered", "shipped", "shipped"),
])
def test_a_message_is_sent_only_while_its_state_still_matches(event, stage, parcel_stage, template):
    ev = OrderEvent(7, event, NOW, "55" if parcel_stage else "", parcel_stage)
    d = decide_message(ev, order(stage), POLICY, NOW)
    assert d.template == template, d.reasons
    assert d.reasons and (template is not None or "no longer matches" in d.reasons[0])


@pytest.mark.parametrize("kwargs, why", [
    ({"tags": "ac:manual"}, "ac:manual"), ({"cancelled": True}, "cancelled"), ({"email": None}, "no email"),
])
def test_manual_cancelled_and_unreachable_orders_get_no_automatic_messages(kwargs, why):
    d = decide_message(OrderEvent(7, "order_placed", NOW), order(**kwargs), POLICY, NOW)
    assert d.template is None and why in d.reasons[0]


@pytest.mark.parametrize("locale, country, lang", [
    ("fr-CA", "CA", "fr"), (None, "MX", "es"), ("ja", "DE", "de"), ("it", "IT", "en"), ("es_ES", "US", "es"),
])
def test_the_language_is_the_customers_locale_else_the_markets_else_english(locale, country, lang):
    d = decide_message(OrderEvent(7, "order_placed", NOW), order(locale=locale, country=country), POLICY, NOW)
    assert d.language == lang and d.template == "order_confirmation"


def test_one_message_per_order_template_and_parcel():
    a = decide_message(OrderEvent(7, "shipped", NOW, "55", "shipped"), order("shipped"), POLICY, NOW)
    b = decide_message(OrderEvent(7, "shipped", NOW, "56", "shipped"), order("shipped"), POLICY, NOW)
    c = decide_message(OrderEvent(7, "order_placed", NOW), order(), POLICY, NOW)
    assert a.effect_key == "msg:7:shipped:55" and b.effect_key == "msg:7:shipped:56" and c.effect_key == "msg:7:order_confirmation"


def _payload(status, at, fid=55):
    return {"id": fid, "order_id": 7, "shipment_status": status, "updated_at": at, "tracking_number": "9400",
            "line_items": [{"title": "Mug", "quantity": 1}]}


def test_carrier_events_out_of_order_and_repeated_make_nothing_new():
    p1, ev, _ = shipment_event(_payload(None, "2026-11-26T10:00:00Z"), None, POLICY)
    assert ev.event == "shipped" and p1.stage == "shipped"
    p2, ev, _ = shipment_event(_payload("delivered", "2026-11-28T10:00:00Z"), p1, POLICY)
    assert ev.event == "delivered"
    # out_for_delivery sent before delivered, arriving after it: older than what we hold
    p, ev, why = shipment_event(_payload("out_for_delivery", "2026-11-28T08:00:00Z"), p2, POLICY)
    assert p is None and ev is None and why.startswith("stale")
    # the same delivered event again (a duplicate webhook)
    p, ev, why = shipment_event(_payload("delivered", "2026-11-28T10:00:00Z"), p2, POLICY)
    assert ev is None and "already delivered" in why
    # in transit after the shipment was announced: the parcel moves, no second message
    p, ev, _ = shipment_event(_payload("in_transit", "2026-11-27T10:00:00Z"), p1, POLICY)
    assert p.stage == "in_transit" and ev is None
    # a carrier delay: a delay event, the parcel stays in transit
    p, ev, _ = shipment_event(_payload("delayed", "2026-11-27T12:00:00Z"), p, POLICY)
    assert ev.event == "delayed" and p.stage == "in_transit"
    assert shipment_event({"id": "x"}, None, POLICY)[1] is None


def test_payment_captured_only_after_we_saw_it_pending():
    create = {"id": 7, "financial_status": "pending", "updated_at": "2026-11-26T10:00:00Z"}
    evs, pending = order_events("orders/create", create, False)
    assert [e.event for e in evs] == ["order_placed"] and pending
    evs, pending = order_events("orders/updated", {**create, "financial_status": "paid"}, True)
    assert [e.event for e in evs] == ["payment_captured"] and not pending
    evs, _ = order_events("orders/updated", {**create, "financial_status": "paid"}, False)  # paid all along
    assert evs == []


@pytest.mark.parametrize("delivered, country, due", [
    # 17:00 in New York on the 26th -> the 29th at 10:00 New York (EST, UTC-5)
    ("2026-11-26T22:00:00+00:00", "US", "2026-11-29T15:00:00+00:00"),
    # 00:30 on the 27th in Berlin (23:30 UTC the 26th) -> the 30th at 10:00 Berlin (UTC+1)
    ("2026-11-26T23:30:00+00:00", "DE", "2026-11-30T09:00:00+00:00"),
    # Sydney in summer (UTC+11)
    ("2026-12-01T02:00:00+00:00", "AU", "2026-12-03T23:00:00+00:00"),
])
def test_followup_is_due_three_days_after_delivery_at_ten_in_the_markets_time_zone(delivered, country, due):
    assert followup_due(datetime.fromisoformat(delivered), POLICY, country) == datetime.fromisoformat(due)


def test_followup_is_suppressed_while_a_ticket_return_or_cancellation_is_open():
    assert decide_followup(order("delivered"), {"ticket": 0, "cancellation": 0, "return": 0}, POLICY).send
    for kind in ("ticket", "return", "cancellation"):
        d = decide_followup(order("delivered"), {kind: 1}, POLICY)
        assert not d.send and f"1 open {kind}" in d.reasons[0]
    assert not decide_followup(order("delivered", tags="ac:manual"), {}, POLICY).send



def test_a_parcel_past_its_promised_day_is_late_by_shipping_method_and_market_day():
    from domain.communication import Parcel, late_parcel_event, promised_by

    shipped = datetime(2026, 11, 27, 20, tzinfo=timezone.utc)  # Friday 15:00 in New York
    assert str(promised_by(shipped, "standard", POLICY, "US")) == "2026-12-04"  # five business days
    assert str(promised_by(shipped, "express", POLICY, "US")) == "2026-12-01"
    assert str(promised_by(shipped, "pigeon", POLICY, "US")) == "2026-12-04"  # "*"
    p = Parcel(55, 7, "in_transit", shipped)
    on_the_day = datetime(2026, 12, 5, 4, 59, tzinfo=timezone.utc)  # 23:59 on the 4th in New York
    assert late_parcel_event(p, shipped, "standard", "US", POLICY, on_the_day) is None
    ev = late_parcel_event(p, shipped, "standard", "US", POLICY, datetime(2026, 12, 5, 5, 1, tzinfo=timezone.utc))
    assert (ev.event, ev.ref, ev.detail["promise_passed"]) == ("delayed", "55", True)
    assert decide_message(ev, order("in_transit"), POLICY, NOW).effect_key == "msg:7:delay_notice:55"
    delivered = Parcel(55, 7, "delivered", shipped)
    assert late_parcel_event(delivered, shipped, "standard", "US", POLICY, datetime(2027, 1, 1, tzinfo=timezone.utc)) is None
