"""The sandbox page a merchant watches during a trial, rendered in headless Chromium."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.sandbox_fixtures import place, served_sandbox

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]


def test_sandbox_page_shows_live_orders_with_stage_holds_and_tags(tmp_path):
    if not Path(CHROMIUM).exists():
        if os.environ.get("AFTERCART_REQUIRE_CHROMIUM"):
            pytest.fail("CI must install Debian's chromium (.ci/run does)")
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with served_sandbox() as s:
        held = place(s.sandbox, customer={"email": "held@example.com", "locale": "en"})
        fo = s.shopify.fulfillment_orders(held)[0]
        s.shopify.hold(held, fo["id"], "INCORRECT_ADDRESS", "ac:hold:address")
        s.shopify.add_tags(held, ["ac:hold:address"])
        shipped = place(s.sandbox)
        s.threepl.send_order(shipped, [{"sku": "MUG", "quantity": 1}], {}, [])
        for status in ("picking", "packed", "shipped"):
            s.http.post(f"{s.url}/3pl/orders/{shipped}/advance", json={"status": status}).raise_for_status()
        names = {oid: s.sandbox.world.orders[oid].name for oid in (held, shipped)}
        s.http.post(f"{s.url}/helpdesk/tickets", json={"channel": "email", "customer": "held@example.com",
                                                       "order": names[held], "text": "wrong flat number"})
        shot = Path(os.environ.get("AFTERCART_SCREENSHOT_DIR", tmp_path)) / "sandbox.png"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            page = browser.new_page(viewport={"width": 1280, "height": 600})
            page.goto(s.url + "/")
            page.screenshot(path=str(shot), full_page=True)
            rows = {r.query_selector("td").inner_text(): [c.inner_text() for c in r.query_selector_all("td")]
                    for r in page.query_selector_all("tbody tr")}
            title = page.title()
            browser.close()
    assert title == "aftercart sandbox"
    assert rows[names[held]][2:5] == ["unfulfilled", "ac:hold:address", "ac:hold:address"]
    assert rows[names[held]][6] == "1:email"
    assert rows[names[shipped]][2] == "shipped"
    assert shot.stat().st_size > 10_000  # a real rendered page, not an empty canvas


def test_sandbox_order_actions_over_http_capture_return_and_open_scheduled():
    from tests.sandbox_fixtures import place, served_sandbox

    with served_sandbox() as s:
        pending = place(s.sandbox, gateway="manual")
        pre = place(s.sandbox, order_type="preorder")
        assert s.http.post(f"{s.url}/sandbox/orders/{pending}/capture").status_code == 200
        assert s.sandbox.world.orders[pending].financial_status == "PAID"
        again = s.http.post(f"{s.url}/sandbox/orders/{pending}/capture")
        assert again.status_code == 409 and "no pending payment" in again.json()["error"]
        bad = s.http.post(f"{s.url}/sandbox/orders/{pending}/return", json={"status": "LOST"})
        assert bad.status_code == 409 and "unknown return status" in bad.json()["error"]
        assert s.http.post(f"{s.url}/sandbox/orders/{pending}/return", json={}).status_code == 200
        assert s.shopify.open_returns([pending, pre]) == {pending: 1}
        assert [fo.status for fo in s.sandbox.world.orders[pre].fulfillment_orders] == ["SCHEDULED"]
        assert s.http.post(f"{s.url}/sandbox/orders/{pre}/open-scheduled").status_code == 200
        assert [fo.status for fo in s.sandbox.world.orders[pre].fulfillment_orders] == ["OPEN"]
        assert s.http.post(f"{s.url}/sandbox/orders/999/capture").status_code == 404
