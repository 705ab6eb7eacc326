"""Webhook intake: signature, size, duplicates, stale updates, malformed bodies, events."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select
from starlette.testclient import TestClient

from intake.app import create_app
from intake.hmac_sign import sign
from tasks.db.engine import session
from tasks.db.models import Order, WebhookDelivery

SECRET = "test-secret"
SHOP = "sandbox.myshopify.com"


def order_payload(oid=1001, updated_at="2026-11-27T09:02:00-05:00", **extra):
    body = {
        "id": oid, "name": f"#{oid}", "email": "dana@example.com", "customer_locale": "en",
        "created_at": "2026-11-27T09:02:00-05:00", "updated_at": updated_at, "tags": "vip, gift",
        "shipping_address": {"country_code": "US", "zip": "10174"}, "fulfillment_status": None,
        "cancelled_at": None,
    }
    body.update(extra)
    return body


def deliver(client, payload, topic="orders/create", webhook_id="wh-1", secret=SECRET, raw=None, hmac_header=None,
            drop=()):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json", "X-Shopify-Topic": topic, "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-API-Version": "2026-10", "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Event-Id": f"ev-{webhook_id}", "X-Shopify-Triggered-At": "2026-11-27T14:02:00Z",
        "X-Shopify-Hmac-Sha256": hmac_header if hmac_header is not None else sign(secret, body),
    }
    for h in drop:
        headers.pop(h)
    return client.post("/webhooks/shopify", content=body, headers=headers)


@pytest.fixture
def events():
    return []


@pytest.fixture
def client(db_url, events):
    app = create_app(db_url, SECRET, emit=lambda e, r, p: events.append((e, r, p)), max_body=1024 * 1024,
                     pending_interval=3600)
    with TestClient(app) as c:
        yield c


def rows(url):
    with session(url) as s:
        return list(s.exec(select(WebhookDelivery).order_by(WebhookDelivery.id)).all())


def test_valid_delivery_is_stored_then_announced(client, db_url, events):
    r = deliver(client, order_payload())
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    (row,) = rows(db_url)
    assert (row.topic, row.webhook_id, row.event_id, row.status, row.order_id) == ("orders/create", "wh-1", "ev-wh-1", "accepted", 1001)
    assert json.loads(row.body)["id"] == 1001
    names = [e[0] for e in events]
    assert names == ["aftercart.shopify.orders.create", "aftercart.inbox.pending"]
    assert events[0][1]["prefect.resource.id"] == "shopify.order.1001"
    assert events[0][2]["inbox_id"] == row.id
    with session(db_url) as s:
        order = s.get(Order, 1001)
    assert (order.name, order.version, order.tags, order.country_code) == ("#1001", 1, ["gift", "vip"], "US")


@pytest.mark.parametrize("header", [None, "", "bm90IHRoZSByaWdodCBvbmU=", "garbage"])
def test_missing_or_wrong_hmac_is_401_and_stores_nothing(client, db_url, events, header):
    if header is None:
        r = deliver(client, order_payload(), drop=("X-Shopify-Hmac-Sha256",))
    else:
        r = deliver(client, order_payload(), hmac_header=header)
    assert r.status_code == 401
    assert rows(db_url) == [] and events == []
    with session(db_url) as s:
        assert s.exec(select(Order)).all() == []


def test_signature_with_another_secret_is_401(client, db_url):
    assert deliver(client, order_payload(), secret="other").status_code == 401
    assert rows(db_url) == []


def test_duplicate_webhook_id_gives_one_row_and_no_new_work(client, db_url, events):
    assert deliver(client, order_payload()).json()["status"] == "accepted"
    again = deliver(client, order_payload())
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(rows(db_url)) == 1
    assert [e[0] for e in events].count("aftercart.shopify.orders.create") == 1


def test_oversize_body_is_413_before_any_hmac_work(client, db_url, monkeypatch):
    import intake.app as intake_app

    def boom(*a, **k):
        raise AssertionError("HMAC computed for an oversize body")

    monkeypatch.setattr(intake_app, "verify", boom)
    big = b"{" + b" " * (1024 * 1024) + b"}"
    r = deliver(client, None, raw=big, hmac_header="x")
    assert r.status_code == 413 and rows(db_url) == []


def test_body_of_exactly_the_limit_is_accepted(db_url):
    payload = order_payload()
    body = json.dumps(payload).encode()
    app = create_app(db_url, SECRET, emit=None, max_body=len(body))
    with TestClient(app) as c:
        assert deliver(c, None, raw=body).status_code == 200
        assert deliver(c, None, raw=body + b" ", webhook_id="wh-2").status_code == 413


def test_stale_update_is_kept_but_never_moves_the_order_back(client, db_url, events):
    deliver(client, order_payload(updated_at="2026-11-27T09:30:00-05:00", email="new@example.com"), webhook_id="a")
    events.clear()
    r = deliver(client, order_payload(updated_at="2026-11-27T09:10:00-05:00", email="old@example.com"),
                topic="orders/updated", webhook_id="b")
    assert r.status_code == 200 and r.json()["status"] == "stale"
    with session(db_url) as s:
        order = s.get(Order, 1001)
    assert order.email == "new@example.com" and order.version == 1
    assert [r.status for r in rows(db_url)] == ["accepted", "stale"]
    assert events == []


def test_newer_update_moves_the_order_forward(client, db_url):
    deliver(client, order_payload(updated_at="2026-11-27T09:10:00-05:00"), webhook_id="a")
    deliver(client, order_payload(updated_at="2026-11-27T14:30:00Z", email="new@example.com"),
            topic="orders/updated", webhook_id="b")
    with session(db_url) as s:
        order = s.get(Order, 1001)
    assert order.email == "new@example.com" and order.version == 2


def test_unknown_topic_is_stored_as_ignored(client, db_url, events):
    r = deliver(client, {"id": 5}, topic="products/update")
    assert r.status_code == 200 and r.json()["status"] == "ignored"
    (row,) = rows(db_url)
    assert row.status == "ignored" and events == []


def test_malformed_json_with_valid_hmac_is_400_and_stored_as_rejected(client, db_url, events):
    r = deliver(client, None, raw=b'{"id": 1001, "name": ')
    assert r.status_code == 400
    (row,) = rows(db_url)
    assert row.status == "rejected" and "malformed JSON" in row.error and row.body == '{"id": 1001, "name": '
    assert events == []
    with session(db_url) as s:
        assert s.exec(select(Order)).all() == []


def test_order_topic_without_updated_at_is_rejected(client, db_url):
    r = deliver(client, {"id": 7, "name": "#7"})
    assert r.status_code == 400 and rows(db_url)[0].status == "rejected"


def test_missing_webhook_id_is_400(client, db_url):
    r = deliver(client, order_payload(), drop=("X-Shopify-Webhook-Id",))
    assert r.status_code == 400 and rows(db_url) == []


def test_failed_emit_keeps_the_row(db_url):
    def broken(*a):
        raise RuntimeError("events down")

    with TestClient(create_app(db_url, SECRET, emit=broken)) as c:
        assert deliver(c, order_payload()).status_code == 200
    assert rows(db_url)[0].status == "accepted"


def test_orders_edited_carries_an_order_edit_not_a_snapshot(client, db_url, events):
    deliver(client, order_payload(updated_at="2026-11-27T09:30:00-05:00"), webhook_id="a")
    events.clear()
    body = {"order_edit": {"id": 77, "order_id": 1001, "created_at": "2026-11-27T09:40:00-05:00",
                           "line_items": {"additions": [{"id": 5, "delta": 1}], "removals": []}}}
    r = deliver(client, body, topic="orders/edited", webhook_id="e1")
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert rows(db_url)[-1].order_id == 1001
    assert events[0][0] == "aftercart.shopify.orders.edited" and events[0][1]["prefect.resource.id"] == "shopify.order.1001"
    with session(db_url) as s:
        assert s.get(Order, 1001).version == 1  # an edit notice does not replace the snapshot


def test_concurrent_deliveries_are_stored_in_groups_each_once_with_the_newest_snapshot(client, db_url, events):
    """Many requests at once (the group writer stores what waits together): repeats of a webhook id
    inside one group and across groups give one row, and the newest snapshot wins whatever the order."""
    from concurrent.futures import ThreadPoolExecutor

    from tasks.db.store import as_utc, get_order

    jobs = []
    for i in range(60):
        jobs.append((order_payload(oid=2000 + i % 20, updated_at=f"2026-11-27T09:{10 + i // 20:02d}:00-05:00"),
                     f"g-{i}"))
    jobs += jobs[:15]  # Shopify's retries, some in the same group as the original
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda j: deliver(client, j[0], webhook_id=j[1]), jobs))
    assert all(a.status_code == 200 for a in answers)
    stored = rows(db_url)
    assert len(stored) == 60 and len({r.webhook_id for r in stored}) == 60
    assert sum(1 for a in answers if a.json()["status"] == "duplicate") == 15
    for i in range(20):  # three snapshots per order: the 09:12 one is kept
        assert as_utc(get_order(db_url, 2000 + i).shopify_updated_at).isoformat().startswith("2026-11-27T14:12")
