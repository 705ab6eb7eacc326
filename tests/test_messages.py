"""Customer message templates: every template in every enabled language renders completely,
customer text is escaped in HTML, money and dates follow the language."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from config.messages import TEMPLATES, TemplateMissing, render, render_page, strings
from config.policy_loader import load_policy
from domain.vocab import ORDER_TYPES, TEMPLATES as VOCAB_TEMPLATES

POLICY = load_policy()
LANGS = POLICY.communication.languages
# every template id of DESIGN.md: a missing file in any enabled language fails here
BUILT = sorted(VOCAB_TEMPLATES)
ADDRESS = {"name": "Ana Ruiz", "address1": "405 Lexington Ave", "address2": "Apt 5B", "city": "New York",
           "province_code": "NY", "zip": "10174", "country_code": "US"}
CONTEXT = {"order_name": "#1042", "customer_name": "Ana", "reasons": ["missing_unit", "po_box"], "address": ADDRESS,
           "link": "https://shop.test/address/1/k?t=abc", "deadline": datetime(2026, 11, 27, 20, tzinfo=timezone.utc),
           "timezone": "America/New_York", "suggestions": {}, "why": "it has already shipped.", "refund": "62.00",
           "currency": "EUR", "shipped": True,
           "what": "new shipping address", "instead": "Reply to this email."}
SOP1 = ["order_confirmation", "payment_confirmed", "fulfillment_started", "shipped", "out_for_delivery", "delivered",
        "post_delivery_followup", "delay_notice"]
LEFTOVER = re.compile(r"\{\{|\}\}|\{%|%\}|\{[a-z_]+\}|Undefined")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("template", BUILT)
def test_every_template_renders_in_every_enabled_language(template, lang):
    m = render(template, lang, _sop1_context(template, "standard", lang) if template in SOP1 else CONTEXT)
    assert m.subject and "#1042" in m.subject
    for part in (m.subject, m.text, m.html):
        assert not LEFTOVER.search(part), part
    if template.startswith("address_"):
        assert "405 Lexington Ave" in m.text and "405 Lexington Ave" in m.html
    if template == "cancellation_approved":
        assert "62" in m.text and "€" in m.text
    if template == "address_confirm_request":
        assert CONTEXT["link"] in m.text and CONTEXT["link"] in m.html
        for r in CONTEXT["reasons"]:
            assert strings(lang)["reasons"][r] in m.text


def test_every_language_translates_every_string_and_no_two_languages_share_a_subject():
    en = strings("en")
    for lang in LANGS:
        s = strings(lang)
        for table in en:
            assert set(s[table]) == set(en[table]), (lang, table)
        if lang != "en":  # an untranslated copy of English is a missing translation
            same = [k for t in ("reasons", "cancellation", "edit", "msg") for k in en[t]
                    if s[t][k] == en[t][k] and k != "colon"]
            assert not same, (lang, same)
    subjects = {render("address_confirm_request", lang, CONTEXT).subject for lang in LANGS}
    assert len(subjects) == len(LANGS)


def test_html_in_what_a_customer_typed_is_escaped():
    evil = {**CONTEXT, "customer_name": "<script>alert(1)</script>",
            "address": {**ADDRESS, "address1": '"><img src=x onerror=alert(1)>'}}
    for lang in LANGS:
        m = render("address_confirm_request", lang, evil)
        assert "<script>" not in m.html and "<img" not in m.html and "&lt;script&gt;" in m.html
        assert "<script>alert(1)</script>" in m.text  # plain text stays as typed
    page = render_page("address_form", "en", {**evil, "address": evil["address"]})
    assert "<img" not in page and "&#34;&gt;&lt;img" in page


def test_dates_are_written_for_the_language_and_market_time_zone():
    en = render("address_confirm_request", "en", CONTEXT).text
    de = render("address_confirm_request", "de", {**CONTEXT, "timezone": "Europe/Berlin"}).text
    assert "November 27, 2026" in en and "3:00:00" in en  # 20:00 UTC is 15:00 in New York
    assert "27. November 2026" in de and "21:00:00" in de


def test_a_missing_template_or_language_is_an_error_not_a_blank_message(tmp_path):
    with pytest.raises(TemplateMissing):
        render("no_such_template", "en", CONTEXT)
    with pytest.raises(TemplateMissing):
        render("address_updated", "xx", CONTEXT)
    with pytest.raises(Exception):  # a variable the caller forgot
        render("address_updated", "en", {"order_name": "#1"})
    assert (TEMPLATES / "pages" / "address_form.html").exists()


def _sop1_context(template: str, order_type: str, lang: str) -> dict:
    """The context the SOP 1 decision builds for an order of this type (through the domain)."""
    from domain.communication import OrderEvent, message_context, message_order

    snap = {"id": 7, "name": "#1042", "email": "ana@example.com", "currency": "EUR", "total_price": "62.00",
            "customer_locale": lang, "shipping_address": {**ADDRESS, "first_name": "Ana"},
            "note_attributes": [{"name": "order_type", "value": order_type},
                                *([{"name": "ships_on", "value": "2026-12-10"}] if order_type == "preorder" else []),
                                {"name": "next_renewal", "value": "2026-12-26"}],
            "line_items": [{"title": "Glass Vase - Large", "quantity": 1, "price": "45.00", "sku": "VASE-L"},
                           {"title": "Mug - Blue", "quantity": 2, "price": "8.50", "sku": "MUG-B"}]}
    order = message_order(snap, "unfulfilled")
    detail = {"company": "USPS", "number": "9400100000", "url": None,
              "lines": [{"title": "Mug - Blue", "quantity": 2}]}  # a split shipment: the vase comes later
    ev = OrderEvent(7, {"order_confirmation": "order_placed"}.get(template, template.replace("delay_notice", "delayed")),
                    datetime(2026, 11, 26, 15, tzinfo=timezone.utc), "55", "in_transit", detail)
    ctx = message_context(template, ev, order, POLICY, datetime(2026, 11, 26, 15, tzinfo=timezone.utc), fragile=True)
    ctx["links"] = {"edit": "https://shop.test/edit/7?t=x", "cancel": "https://shop.test/cancel/7?t=y"}
    return ctx


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("order_type", sorted(ORDER_TYPES))
@pytest.mark.parametrize("template", SOP1)
def test_sop1_messages_render_for_every_order_type(template, order_type, lang):
    m = render(template, lang, _sop1_context(template, order_type, lang))
    for part in (m.subject, m.text, m.html):
        assert not LEFTOVER.search(part), part
        assert "None" not in part
    t = strings(lang)["msg"]
    if order_type == "gift":  # the recipient may see it: no prices anywhere
        assert "45" not in m.text and "€" not in m.text and "€" not in m.html
    if template == "order_confirmation":
        assert "Glass Vase - Large" in m.text and "https://shop.test/edit/7?t=x" in m.text
        if order_type != "gift":
            assert "45" in m.text
        assert (t["preorder"].split("{date}")[0] in m.text) == (order_type == "preorder")
        assert (t["subscription"].split("{date}")[0] in m.text) == (order_type == "subscription")
        assert t["fragile"] in m.text
    if template == "shipped":  # which items in this parcel, which come later
        assert "9400100000" in m.text and t["still_to_come"] in m.text
        assert m.text.index("Mug - Blue") < m.text.index("Glass Vase - Large")


def test_first_message_answers_what_when_and_how_to_change_before_anything_else():
    m = render("order_confirmation", "en", _sop1_context("order_confirmation", "standard", "en"))
    what, when, change = (m.text.index("What you ordered"), m.text.index("It ships by"),
                          m.text.index("Change the address or the order"))
    assert what < when < change
    assert "November 30, 2026" in m.text  # two business days after Thursday 26 November: Friday, Monday


@pytest.mark.parametrize("template", SOP1)
def test_a_customers_name_or_item_with_markup_never_renders_as_html(template):
    ctx = _sop1_context(template, "standard", "en")
    ctx["customer_name"] = "<script>alert(1)</script>"
    ctx["items"] = [{"title": "<img src=x onerror=alert(2)>", "quantity": 1, "price": "5.00"}]
    m = render(template, "en", ctx)
    assert "<script>" not in m.html and "<img" not in m.html
    assert "&lt;script&gt;" in m.html
