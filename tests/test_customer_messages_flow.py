"""SOP 1 over loopback: sandbox webhooks, 3PL pushes and customer replies reach the intake, the
drain decides and mails each message once (counted in the sandbox mailbox), the follow-up schedule
sends or suppresses the post-delivery follow-up."""

from __future__ import annotations

import smtplib
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from sqlmodel import select

from config.messages import render
from intake.app import create_app as create_intake
from sandbox.app import Sandbox, SandboxConfig, create_app as create_sandbox
from tasks.db.engine import migrate, session
from tasks.db.models import Decision, Effect, OrderComms, Ticket
from tests.helpers import free_port, serve_app

pytestmark = pytest.mark.usefixtures("prefect_harness")
SECRET = "msg-test-secret"
US = {"name": "Dana Wu", "address1": "405 Lexington Ave", "address2": "", "city": "New York",
      "province_code": "NY", "zip": "10174", "country_code": "US"}
FR = {"name": "Zoé Martin", "address1": "12 Rue de Rivoli", "address2": "", "city": "Paris", "zip": "75004",
      "country_code": "FR"}


@pytest.fixture
def world(aftercart_env, monkeypatch):
    """Sandbox (Shopify, 3PL, carrier, SMTP mailbox) and intake on loopback: Shopify webhooks, the
    3PL's pushes and mail to the store's address all reach the intake."""
    migrate(aftercart_env)
    intake_port, smtp = free_port(), free_port()
    intake = f"http://127.0.0.1:{intake_port}"
    sandbox = Sandbox(SandboxConfig(
        webhook_secret=SECRET, access_token="tok", retry_base=0.05, plan="plus", smtp_port=smtp,
        webhook_address=f"{intake}/webhooks/shopify", duplicate_rate=0.3, reorder_rate=0.2,
        threepl_push_url=f"{intake}/webhooks/3pl", threepl_secret="3pl-k",
        store_email="orders@sandbox.test", inbound_email_url=f"{intake}/inbound/email", inbound_email_secret="in-k"))
    sandbox.ops.cancel_delay = 0.02
    from config.policy_loader import load_policy
    from intake.self_serve import SelfServe

    policy = load_policy()
    self_serve = SelfServe("sandbox-link-secret", lambda: policy, lambda *a: None)  # pages only: nothing starts
    monkeypatch.setenv("AFTERCART_PUBLIC_URL", intake)
    with serve_app(create_sandbox(sandbox)) as sandbox_url, serve_app(create_intake(
            aftercart_env, SECRET, emit=None, threepl_secret="3pl-k", inbound_secret="in-k", self_serve=self_serve),
            port=intake_port):
        monkeypatch.setenv("AFTERCART_SHOPIFY_ADMIN_URL", f"{sandbox_url}/admin/api/2026-10/graphql.json")
        monkeypatch.setenv("AFTERCART_SHOPIFY_ACCESS_TOKEN", "tok")
        monkeypatch.setenv("AFTERCART_SMTP_PORT", str(smtp))
        monkeypatch.setenv("AFTERCART_THREEPL_URL", sandbox_url)
        yield sandbox, aftercart_env, smtp


def drain(sandbox) -> dict:
    from flows.intake_drain import drain_inbox

    assert sandbox.sender.wait_idle(60) and sandbox.threepl.wait_idle(60)
    return drain_inbox(batch_size=500)


def templates_to(sandbox, email: str) -> list[str]:
    return [m.headers["X-Aftercart-Template"] for m in sandbox.mailbox.find(to=email)]


def place(sandbox, email, address=US, locale="en", **over):
    data = {"customer": {"email": email, "locale": locale}, "shipping_address": address,
            "line_items": [{"sku": "MUG-BLUE", "quantity": 1, "price": "18.00"}]}
    data.update(over)
    return sandbox.world.create_order(data)


def release(sandbox, o):
    """What SOP 7 will do (not built yet): the order goes to the 3PL, which accepts it and pushes."""
    sandbox.threepl.receive({"order_id": o.id, "lines": [{"sku": li.sku, "quantity": li.quantity}
                                                         for li in o.line_items]})


def ship(sandbox, o):
    for status in ("picking", "packed", "shipped"):
        sandbox.threepl.advance(o.id, status)
    return sandbox.threepl.orders[o.id].tracking_number


def carrier(sandbox, tracking, status):
    with sandbox.world.lock:
        sandbox.ops.tracking_event(tracking, status)


def test_a_french_orders_whole_life_sends_each_message_once_in_french(world):
    from flows.customer_messages import customer_messages

    sandbox, url, _ = world
    o = place(sandbox, "zoe@example.fr", FR, locale="fr-FR", currency="EUR")
    drain(sandbox)
    release(sandbox, o)
    drain(sandbox)
    tracking = ship(sandbox, o)
    drain(sandbox)
    carrier(sandbox, tracking, "in_transit")
    carrier(sandbox, tracking, "out_for_delivery")
    drain(sandbox)
    carrier(sandbox, tracking, "delivered")
    drain(sandbox)
    # late and repeated carrier events: out for delivery after delivered, delivered twice
    carrier(sandbox, tracking, "out_for_delivery")
    carrier(sandbox, tracking, "delivered")
    drain(sandbox)
    life = ["order_confirmation", "fulfillment_started", "shipped", "out_for_delivery", "delivered"]
    assert templates_to(sandbox, "zoe@example.fr") == life
    # the follow-up: not before three days at 10:00 Paris time, then once
    with session(url) as s:
        comms = s.exec(select(OrderComms).where(OrderComms.order_id == o.id)).one()
    due = comms.followup_due_at.astimezone(timezone.utc)
    assert due.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris")).hour == 10
    assert customer_messages(now=due - timedelta(minutes=1))["followups_sent"] == 0
    assert customer_messages(now=due)["followups_sent"] == 1
    assert customer_messages(now=due + timedelta(days=1))["followups_sent"] == 0
    assert templates_to(sandbox, "zoe@example.fr") == [*life, "post_delivery_followup"]
    for m in sandbox.mailbox.find(to="zoe@example.fr"):  # every one in French, with its HTML part
        tmpl = m.headers["X-Aftercart-Template"]
        assert m.headers["Subject"].startswith(render(tmpl, "fr", _ctx(tmpl)).subject.split(o.name)[0][:12])
        assert m.html and 'lang="fr"' in m.html
    shipped = sandbox.mailbox.find(to="zoe@example.fr", header=("X-Aftercart-Template", "shipped"))[0]
    assert tracking in shipped.text and "Suivi" in shipped.text
    confirmation = sandbox.mailbox.find(to="zoe@example.fr", header=("X-Aftercart-Template", "order_confirmation"))[0]
    assert "/cancel/" in confirmation.text and "/edit/" in confirmation.text and "18,00" in confirmation.text
    # every message decision recorded once with the policy that made it
    with session(url) as s:
        outcomes = Counter(d.outcome for d in s.exec(select(Decision).where(
            Decision.sop == "communication", Decision.subject == f"order:{o.id}")).all())
    assert outcomes == Counter({t: 1 for t in [*life, "post_delivery_followup"]})


def _ctx(template):
    from tests.test_messages import _sop1_context

    return _sop1_context(template, "standard", "fr")


def test_a_reply_becomes_a_ticket_on_its_order_and_an_open_ticket_suppresses_the_follow_up(world):
    from flows.customer_messages import customer_messages

    sandbox, url, smtp = world
    o = place(sandbox, "sam@example.com")
    quiet = place(sandbox, "lee@example.com")
    drain(sandbox)
    for x in (o, quiet):
        release(sandbox, x)
        tracking = ship(sandbox, x)
        carrier(sandbox, tracking, "delivered")
    drain(sandbox)
    delivered = sandbox.mailbox.find(to="sam@example.com", header=("X-Aftercart-Template", "delivered"))[0]
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = "Sam <sam@example.com>", "orders@sandbox.test", "Re: " + delivered.subject
    reply["Message-ID"], reply["In-Reply-To"] = "<reply-1@example.com>", delivered.headers["Message-ID"]
    reply.set_content("The mug arrived <b>broken</b>.\n\nOn Thu, Nov 26 orders@sandbox.test wrote:\n> delivered")
    with smtplib.SMTP("127.0.0.1", smtp) as c:
        c.send_message(reply)
        c.send_message(reply)  # the provider retries: still one ticket
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(sandbox.mailbox.forwarded) < 2:
        time.sleep(0.1)
    with session(url) as s:
        tickets = s.exec(select(Ticket)).all()
    assert len(tickets) == 1
    t = tickets[0]
    assert (t.order_id, t.channel, t.reply_to_template, t.status) == (o.id, "email", "delivered", "open")
    assert "broken" in t.text and "> delivered" not in t.text
    result = customer_messages(now=datetime.now(timezone.utc) + timedelta(days=4))
    assert result["followups_sent"] == 1 and result["followups_suppressed"] == 1
    assert "post_delivery_followup" not in templates_to(sandbox, "sam@example.com")
    assert templates_to(sandbox, "lee@example.com")[-1] == "post_delivery_followup"
    with session(url) as s:
        why = s.exec(select(OrderComms).where(OrderComms.order_id == o.id)).one().followup_reason
    assert "1 open ticket" in why
    # the daily report: which message customers still answered with a ticket, and link opens against tickets
    import httpx

    from tasks.db.comms_store import message_metrics

    confirmation = sandbox.mailbox.find(to="sam@example.com", header=("X-Aftercart-Template", "order_confirmation"))[0]
    cancel = next(w for w in confirmation.text.split() if "/cancel/" in w)
    assert cancel.startswith("http://127.0.0.1:") and httpx.get(cancel, timeout=10).status_code == 200  # counted
    assert httpx.get(cancel.replace("?t=", "?t=forged"), timeout=10).status_code == 404  # not counted
    m = message_metrics(url, datetime.now(timezone.utc) - timedelta(days=1))
    rows = {r["template"]: r for r in m["by_template"]}
    assert rows["delivered"]["sent"] == 2 and rows["delivered"]["orders_with_ticket_within_48h"] == 1
    assert rows["delivered"]["ticket_rate"] == 0.5 and rows["post_delivery_followup"]["sent"] == 1
    assert {r["request_type"]: (r["self_serve_link_opens"], r["tickets"]) for r in m["self_serve_vs_tickets"]} == {
        "cancel_order": (1, 0), "untriaged": (0, 1)}


def test_an_open_return_suppresses_the_follow_up(world):
    from flows.customer_messages import customer_messages

    sandbox, url, _ = world
    o = place(sandbox, "ret@example.com")
    drain(sandbox)
    release(sandbox, o)
    carrier(sandbox, ship(sandbox, o), "delivered")
    drain(sandbox)
    with sandbox.world.lock:
        sandbox.ops.request_return(o)
    assert customer_messages(now=datetime.now(timezone.utc) + timedelta(days=4))["followups_suppressed"] == 1
    assert "post_delivery_followup" not in templates_to(sandbox, "ret@example.com")


def test_split_shipment_preorder_gift_and_manual_orders(world):
    sandbox, url, _ = world
    split = place(sandbox, "split@example.com", line_items=[
        {"sku": "MUG-BLUE", "quantity": 1, "price": "18.00"},
        {"sku": "VASE-L", "quantity": 1, "price": "45.00", "preorder": True}], ships_on="2026-12-10")
    place(sandbox, "gift@example.com", order_type="gift")
    place(sandbox, "vip@example.com", tags=["ac:manual"])
    pending = place(sandbox, "late@example.com", gateway="manual")
    drain(sandbox)
    with sandbox.world.lock:
        sandbox.ops.capture(pending)
    drain(sandbox)
    conf = sandbox.mailbox.find(to="split@example.com")[0]
    # a mixed order: the in-stock part ships by the promise, the preorder item on its date
    assert "It ships by" in conf.text and "Pre-order: it ships on December 10, 2026" in conf.text
    assert "$18.00" in conf.text
    gift_mail = sandbox.mailbox.find(to="gift@example.com")[0]
    assert "$" not in gift_mail.text and "$" not in gift_mail.html and "gift" in gift_mail.subject.lower()
    assert templates_to(sandbox, "vip@example.com") == []
    assert templates_to(sandbox, "late@example.com") == ["order_confirmation", "payment_confirmed"]
    release(sandbox, split)
    first = ship(sandbox, split)  # the in-stock parcel
    drain(sandbox)
    parcel1 = sandbox.mailbox.find(to="split@example.com", header=("X-Aftercart-Template", "shipped"))[0]
    assert first in parcel1.text
    body = parcel1.text
    assert body.index("MUG-BLUE") < body.index("Still to come") < body.index("VASE-L")
    with sandbox.world.lock:  # the preorder stock arrives; its parcel ships
        sandbox.ops.open_scheduled(split)
        f2 = sandbox.ops.fulfill(split, "USPS", "9400SECOND")
    drain(sandbox)
    shipped = sandbox.mailbox.find(to="split@example.com", header=("X-Aftercart-Template", "shipped"))
    assert len(shipped) == 2 and "9400SECOND" in shipped[1].text and "Still to come" not in shipped[1].text
    assert f2.fulfillment_order_id != split.fulfillment_orders[0].id


def test_a_mail_server_outage_loses_no_message(world, monkeypatch):
    from flows.customer_messages import customer_messages

    sandbox, url, smtp = world
    monkeypatch.setenv("AFTERCART_SMTP_PORT", str(free_port()))  # nothing listens there
    o = place(sandbox, "down@example.com")
    from tasks.messages_io import deliver

    monkeypatch.setattr("flows.customer_messages.send_customer_messages",
                        lambda url, messages, return_state=False: _failed(deliver, url, messages.unwrap()))
    drain(sandbox)
    assert templates_to(sandbox, "down@example.com") == []
    with session(url) as s:
        row = s.exec(select(Effect).where(Effect.effect_key == f"msg:{o.id}:order_confirmation")).one()
    assert row.status == "pending" and row.request["context"]["order_name"] == o.name
    monkeypatch.setenv("AFTERCART_SMTP_PORT", str(smtp))
    with session(url) as s:  # the schedule resends what has waited a minute
        row = s.exec(select(Effect).where(Effect.effect_key == f"msg:{o.id}:order_confirmation")).one()
        row.updated_at = row.updated_at - timedelta(minutes=5)
        s.add(row)
        s.commit()
    assert customer_messages()["resent"] == 1
    assert customer_messages()["resent"] == 0
    assert templates_to(sandbox, "down@example.com") == ["order_confirmation"]


def _failed(deliver, url, messages):
    from prefect.states import Failed

    try:
        deliver(url, messages)
    except OSError as exc:
        return Failed(message=str(exc))
    raise AssertionError("the mail server was expected to be down")


def test_a_thousand_orders_through_their_life_get_each_message_once(world):
    """1,000 orders (a tenth paid later, duplicated and reordered webhooks) placed -> released ->
    shipped -> out for delivery -> delivered -> follow-up: the mailbox holds each message once."""
    from flows.customer_messages import customer_messages

    sandbox, url, _ = world
    langs = ["en", "es", "fr", "de"]
    orders = [place(sandbox, f"c{i}@example.com", locale=langs[i % 4], **({"gateway": "manual"} if i % 10 == 0 else {}))
              for i in range(1000)]
    drain(sandbox)
    with sandbox.world.lock:
        for o in orders[::10]:
            sandbox.ops.capture(o)
    drain(sandbox)
    for o in orders:
        release(sandbox, o)
    drain(sandbox)
    tracking = {o.id: ship(sandbox, o) for o in orders}
    drain(sandbox)
    for status in ("out_for_delivery", "delivered"):
        for o in orders:
            carrier(sandbox, tracking[o.id], status)
        drain(sandbox)
    drain(sandbox)  # nothing left: a second pass sends nothing
    assert customer_messages(now=datetime.now(timezone.utc) + timedelta(days=5))["followups_sent"] == 1000
    sent = Counter((m.rcpt_to[0], m.headers["X-Aftercart-Template"]) for m in sandbox.mailbox.messages)
    assert max(sent.values()) == 1  # never twice
    by_template = Counter(t for _to, t in sent)
    assert by_template == Counter({"order_confirmation": 1000, "payment_confirmed": 100, "fulfillment_started": 1000,
                                   "shipped": 1000, "out_for_delivery": 1000, "delivered": 1000,
                                   "post_delivery_followup": 1000})
    assert sandbox.sender.stats.duplicates_sent > 0  # the intake saw repeated deliveries


def test_a_parcel_past_its_promised_date_gets_one_delay_notice_and_a_carrier_delay_no_second(world):
    from flows.customer_messages import customer_messages

    sandbox, url, _ = world
    late, delayed, fine = (place(sandbox, f"{n}@example.com") for n in ("late", "delayed", "fine"))
    drain(sandbox)
    tracking = {}
    for o in (late, delayed, fine):
        release(sandbox, o)
        tracking[o.id] = ship(sandbox, o)
    carrier(sandbox, tracking[delayed.id], "delayed")  # the carrier says so first
    carrier(sandbox, tracking[fine.id], "delivered")
    drain(sandbox)
    assert templates_to(sandbox, "delayed@example.com")[-1] == "delay_notice"
    assert customer_messages(now=datetime.now(timezone.utc) + timedelta(days=2))["delay_notices"] == 0
    assert customer_messages(now=datetime.now(timezone.utc) + timedelta(days=10))["delay_notices"] == 1
    assert customer_messages(now=datetime.now(timezone.utc) + timedelta(days=11))["delay_notices"] == 0
    # released and shipped within one drain: `fulfillment_started` no longer matched and was not sent
    assert templates_to(sandbox, "late@example.com") == ["order_confirmation", "shipped", "delay_notice"]
    assert templates_to(sandbox, "delayed@example.com").count("delay_notice") == 1
    assert "delay_notice" not in templates_to(sandbox, "fine@example.com")


def test_a_batch_goes_out_over_several_smtp_sessions_each_message_once_and_each_orders_in_order(world, monkeypatch):
    from tasks.clients.mailer import Mailer
    from tasks.messages_io import deliver

    sandbox, url, _ = world
    opened = []
    real = Mailer.connection

    def counted(self):
        opened.append(1)
        return real(self)

    monkeypatch.setattr(Mailer, "connection", counted)
    from types import SimpleNamespace  # the delivery is tested here, not the templates

    monkeypatch.setattr("config.messages.render", lambda template, language, ctx: SimpleNamespace(
        subject=f"{ctx['order_name']} {ctx['step']}", text=ctx["step"], html=None))
    steps = ["order_confirmation", "order_shipped", "out_for_delivery", "delivered"]
    messages = [{"order_id": 7000 + o, "to": f"c{o}@example.com", "template": "order_confirmation", "language": "en",
                 "effect_key": f"msg:{7000 + o}:{step}",
                 "context": {"order_name": f"#{7000 + o}", "step": step}} for step in steps for o in range(30)]
    assert deliver(url, messages, sessions=4) == {"sent": 120, "already_sent": 0, "failed": 0}
    assert len(opened) == 4
    assert deliver(url, messages, sessions=4) == {"sent": 0, "already_sent": 120, "failed": 0}
    for o in range(30):  # in the mailbox: each once, in the order given
        assert [m.subject for m in sandbox.mailbox.find(to=f"c{o}@example.com")] == [f"#{7000 + o} {s}" for s in steps]
    with session(url) as s:
        from tasks.db.models import Message

        rows = s.exec(select(Message).order_by(Message.id)).all()
    assert len(rows) == 120 and len({r.message_id for r in rows}) == 120
    for o in range(30):  # one order's messages went out on one session, in the order given
        assert [r.effect_key.rsplit(":", 1)[1] for r in rows if r.order_id == 7000 + o] == steps
    # without `sessions`, the smtp_sessions setting says how many (default 4; a mail provider may allow fewer)
    monkeypatch.setenv("AFTERCART_SMTP_SESSIONS", "3")
    more = [{**m, "effect_key": m["effect_key"] + ":again"} for m in messages]
    assert deliver(url, more) == {"sent": 120, "already_sent": 0, "failed": 0} and len(opened) == 4 + 3
