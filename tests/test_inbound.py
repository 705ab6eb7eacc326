"""The intake's other doors: the 3PL's signed status pushes and customers' replies by mail."""

from __future__ import annotations

import json

from starlette.testclient import TestClient
from sqlmodel import select

from intake.app import create_app
from intake.hmac_sign import sign
from tasks.db.engine import migrate, session
from tasks.db.models import Ticket, WebhookDelivery


def client(url):
    migrate(url)
    return TestClient(create_app(url, "s", emit=None, threepl_secret="3pl", inbound_secret="in"))


def test_3pl_pushes_are_signed_stored_once_and_bad_ones_refused(aftercart_env):
    c = client(aftercart_env)
    body = json.dumps({"event": "received", "order": {"order_id": 7, "status": "received", "version": 1,
                                                       "updated_at": "2026-11-26T10:00:00Z"}}).encode()
    assert c.post("/webhooks/3pl", content=body).status_code == 401
    assert c.post("/webhooks/3pl", content=body, headers={"X-3PL-Signature": sign("wrong", body)}).status_code == 401
    ok = c.post("/webhooks/3pl", content=body, headers={"X-3PL-Signature": sign("3pl", body)})
    again = c.post("/webhooks/3pl", content=body, headers={"X-3PL-Signature": sign("3pl", body)})
    assert (ok.json()["status"], again.json()["status"]) == ("accepted", "duplicate")
    bad = b'{"event": "received"}'
    r = c.post("/webhooks/3pl", content=bad, headers={"X-3PL-Signature": sign("3pl", bad)})
    assert r.status_code == 400 and "order_id" in r.json()["error"]
    with session(aftercart_env) as s:
        rows = s.exec(select(WebhookDelivery)).all()
    assert [(r.topic, r.order_id, r.status) for r in rows] == [("3pl/received", 7, "accepted")]


def test_a_mail_without_headers_or_signature_is_refused_and_an_unknown_reply_still_becomes_a_ticket(aftercart_env):
    c = client(aftercart_env)
    raw = b"From: a@example.com\r\nMessage-ID: <x1@example.com>\r\nSubject: hi\r\n\r\nWhere is my order?\r\n"
    assert c.post("/inbound/email", content=raw).status_code == 401
    nofrom = b"Subject: hi\r\n\r\nhello\r\n"
    assert c.post("/inbound/email", content=nofrom, headers={"X-Inbound-Signature": sign("in", nofrom)}).status_code == 400
    r = c.post("/inbound/email", content=raw, headers={"X-Inbound-Signature": sign("in", raw)})
    assert r.status_code == 200 and r.json()["order_id"] is None  # not a reply to our mail: triage finds the order
    with session(aftercart_env) as s:
        t = s.exec(select(Ticket)).one()
    assert (t.channel, t.customer_email, t.status) == ("email", "a@example.com", "open") and "Where is my order?" in t.text
