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


def test_a_reply_that_arrives_before_its_message_is_recorded_still_finds_its_order(aftercart_env):
    """The customer can answer the moment the mail arrives, before the sender has written the
    message's row: our Message-ID names the effect, whose ledger row (written before sending)
    names the order and the template. Other Message-IDs, and ours for unknown effects, find nothing."""
    from email.message import EmailMessage

    from tasks.clients.mailer import effect_key_of, message_id_for
    from tasks.db.models import Effect

    key = "msg:5001:fulfillment_started"
    mid = message_id_for(key, "shop.test")
    assert mid == message_id_for(key, "shop.test") and effect_key_of(mid) == key
    assert effect_key_of("<abc.123@mail.example>") is None and effect_key_of("<ac-!!@x>") is None
    c = client(aftercart_env)
    with session(aftercart_env) as s:
        s.add(Effect(effect_key=key, kind="message", subject="order:5001", idempotency_key=key,
                     request={"to": "c@example.com", "template": "fulfillment_started", "language": "fr",
                              "order_id": 5001, "context": {}}))
        s.add(Effect(effect_key="msg:5002:x", kind="message", subject="order:5002", idempotency_key="k2",
                     request={"to": "d@example.com", "template": "order_confirmation", "language": "en"}))
        s.commit()

    def reply(n, in_reply_to):
        m = EmailMessage()
        m["From"], m["To"], m["Subject"], m["Message-ID"] = "c@example.com", "orders@shop.test", "Re", f"<r{n}@c>"
        m["In-Reply-To"] = in_reply_to
        m.set_content("Avant Noël ?")
        body = m.as_bytes()
        return c.post("/inbound/email", content=body, headers={"X-Inbound-Signature": sign("in", body)}).json()

    assert (reply(1, mid)["order_id"], reply(1, mid)["reply_to"]) == (5001, "fulfillment_started")
    assert reply(2, message_id_for("msg:5002:x", "shop.test"))["order_id"] == 5002  # order from the ledger's subject
    assert reply(3, message_id_for("msg:9:unknown", "shop.test"))["order_id"] is None
