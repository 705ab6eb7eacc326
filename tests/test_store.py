"""The operational store on SQLite and PostgreSQL: migrations, ledger, audit, concurrency."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import inspect, text
from sqlmodel import select

from domain.orders import OrderFacts
from tasks.db import ledger, store
from tasks.db.engine import get_engine, migrate, session
from tasks.db.models import AuditLog, Effect, Order

TABLES = {"orders", "webhook_inbox", "effects", "decisions", "approvals", "messages", "tickets", "audit_log",
          "cursors", "alembic_version"}


def test_migrations_create_every_table_and_are_idempotent(db_url):
    migrate(db_url)  # a second run is a no-op
    assert TABLES <= set(inspect(get_engine(db_url)).get_table_names())


def test_sqlite_runs_in_wal_with_full_sync(sqlite_url):
    with get_engine(sqlite_url).connect() as c:
        assert c.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert c.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_audit_log_is_append_only(db_url):
    store.audit(db_url, "ops@sandbox.test", "approval.refused", "approval:1", why="not an approver")
    with session(db_url) as s:
        with pytest.raises(Exception, match="append-only"):
            s.exec(text("UPDATE audit_log SET actor = 'someone else'"))
            s.commit()
        s.rollback()
        with pytest.raises(Exception, match="append-only"):
            s.exec(text("DELETE FROM audit_log"))
            s.commit()
        s.rollback()
        (row,) = s.exec(select(AuditLog)).all()
    assert row.actor == "ops@sandbox.test" and row.detail == {"why": "not an approver"}


def test_effect_runs_once_and_returns_the_stored_result(db_url):
    calls = []

    def call(key):
        calls.append(key)
        return {"refund": "gid://shopify/Refund/1"}

    for _ in range(3):
        out = ledger.perform_effect(db_url, "refund:order:1:req:9", "refund", "order:1", {"amount": "10.00"}, call)
        assert out == {"refund": "gid://shopify/Refund/1"}
    assert calls == ["refund:order:1:req:9"]
    with session(db_url) as s:
        (row,) = s.exec(select(Effect)).all()
    assert (row.status, row.attempts, row.request) == ("confirmed", 1, {"amount": "10.00"})


def test_failed_effect_is_retried_with_the_same_idempotency_key(db_url):
    keys = []

    def flaky(key):
        keys.append(key)
        if len(keys) == 1:
            raise TimeoutError("reply lost")
        return {"ok": True}

    with pytest.raises(TimeoutError):
        ledger.perform_effect(db_url, "hold:order:2:address", "hold", "order:2", {}, flaky)
    with session(db_url) as s:
        row = s.exec(select(Effect)).one()
        assert row.status == "failed" and "reply lost" in row.last_error
    assert ledger.perform_effect(db_url, "hold:order:2:address", "hold", "order:2", {}, flaky) == {"ok": True}
    assert keys[0] == keys[1]
    with session(db_url) as s:
        row = s.exec(select(Effect)).one()
    assert (row.status, row.attempts, row.last_error) == ("confirmed", 2, None)


def _facts(minute: int, email: str, oid: int = 42) -> OrderFacts:
    ts = datetime(2026, 11, 27, 14, 0, tzinfo=timezone.utc) + timedelta(minutes=minute)
    return OrderFacts(id=oid, name=f"#{oid}", email=email, customer_locale="en", country_code="US", tags=[],
                      updated_at=ts, stage="unfulfilled")


@pytest.mark.parametrize("oid", [42, 43, 44, 45, 46, 47])
def test_racing_snapshots_leave_the_newest(db_url, oid):
    """Twenty threads deliver snapshots of one new order in random order; the newest must win."""
    import random

    minutes = list(range(20))
    random.Random(oid).shuffle(minutes)
    barrier = threading.Barrier(len(minutes))

    def worker(m):
        barrier.wait()
        store.upsert_order(db_url, "shop", _facts(m, f"v{m}@example.com", oid), {"m": m})

    threads = [threading.Thread(target=worker, args=(m,)) for m in minutes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with session(db_url) as s:
        order = s.get(Order, oid)
    assert order.email == "v19@example.com" and order.snapshot == {"m": 19}
    if oid != 42:
        return
    assert store.upsert_order(db_url, "shop", _facts(3, "old@example.com"), {}) == "stale"
    assert store.upsert_order(db_url, "shop", _facts(19, "same@example.com"), {}) == "same"


def test_a_shopify_snapshot_never_moves_the_stage_back(db_url):
    """An orders/updated for a hold at `picking` says only `unfulfilled`; the 3PL's word stays. A
    cancellation (Shopify's own side state) replaces any stage. (Found by a scenario: a hold after
    picking started showed the order as unfulfilled.)"""
    from dataclasses import replace

    store.upsert_order(db_url, "shop", _facts(0, "a@example.com", 7), {})
    store.set_stages(db_url, {7: "picking"})
    assert store.upsert_order(db_url, "shop", _facts(1, "a@example.com", 7), {}) == "apply"
    assert store.stages_of(db_url, [7]) == {7: "picking"}
    store.upsert_order(db_url, "shop", replace(_facts(2, "a@example.com", 7), stage="shipped"), {})
    assert store.stages_of(db_url, [7]) == {7: "shipped"}
    store.upsert_order(db_url, "shop", replace(_facts(3, "a@example.com", 7), stage="cancelled"), {})
    assert store.stages_of(db_url, [7]) == {7: "cancelled"}


def test_cursor_roundtrip(db_url):
    assert store.get_cursor(db_url, "reconcile") is None
    store.set_cursor(db_url, "reconcile", "2026-11-27T14:00:00Z")
    store.set_cursor(db_url, "reconcile", "2026-11-27T15:00:00Z")
    assert store.get_cursor(db_url, "reconcile") == "2026-11-27T15:00:00Z"


def test_migrations_match_the_models(db_url):
    """A model change without its Alembic migration fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import tasks.db.models  # noqa: F401

    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def _job(webhook_id: str, facts: OrderFacts | None, shop: str = "shop") -> dict:
    fields = dict(shop=shop, webhook_id=webhook_id, topic="orders/updated", status="accepted",
                  order_id=facts.id if facts else None, body="{}")
    return {"fields": fields, "shop": shop, "facts": facts, "payload": {"email": facts.email} if facts else None}


def _group_outcome(db_url, oid: int) -> tuple:
    with session(db_url) as s:
        o = s.get(Order, oid)
        return o.email, o.stage, o.version, o.snapshot


def test_a_group_applies_each_orders_newest_snapshot_once_and_judges_every_job(db_url):
    """The intake's group write: new and stored orders, several snapshots of one order in the
    group in any order, a repeat of a webhook id, a stage the 3PL moved that Shopify's word keeps."""
    from dataclasses import replace

    store.upsert_order(db_url, "shop", _facts(0, "stored@example.com", 7), {"email": "stored@example.com"})
    store.set_stages(db_url, {7: "picking"})
    jobs = [_job("a", _facts(5, "five@example.com", 7)), _job("b", _facts(9, "nine@example.com", 7)),
            _job("c", _facts(7, "seven@example.com", 7)), _job("d", _facts(0, "same@example.com", 7)),
            _job("e", _facts(1, "new@example.com", 8)), _job("a", _facts(5, "five@example.com", 7)),
            _job("f", replace(_facts(2, "packed@example.com", 9), stage="shipped"))]
    out = store.write_deliveries(db_url, jobs)
    assert [o.get("verdict") for o in out] == ["apply", "apply", "stale", "stale", "apply", None, "apply"]
    assert [o["duplicate"] for o in out] == [False] * 5 + [True, False]
    assert out[5]["id"] == out[0]["id"]
    assert _group_outcome(db_url, 7) == ("nine@example.com", "picking", 2, {"email": "nine@example.com"})
    assert _group_outcome(db_url, 8)[:3] == ("new@example.com", "unfulfilled", 1)
    assert _group_outcome(db_url, 9)[1] == "shipped"
    # the same snapshot again in a later group is `same`, an older one `stale`; neither moves the order
    out = store.write_deliveries(db_url, [_job("g", _facts(9, "again@example.com", 7)),
                                          _job("h", _facts(3, "old@example.com", 7))])
    assert [o["verdict"] for o in out] == ["same", "stale"]
    assert _group_outcome(db_url, 7)[:3] == ("nine@example.com", "picking", 2)


def test_a_group_whose_read_went_stale_falls_back_to_one_job_at_a_time(db_url, monkeypatch):
    """If another writer moved an order between the group's read and its write, the conditional
    update finds nothing and the group is stored job by job (nothing lost, the newest still wins)."""
    store.upsert_order(db_url, "shop", _facts(4, "stored@example.com", 7), {"email": "stored@example.com"})
    real = store._orders_read
    monkeypatch.setattr(store, "_orders_read", lambda s, ids: {
        oid: (ts - timedelta(minutes=1), stage) for oid, (ts, stage) in real(s, ids).items()})
    out = store.write_deliveries(db_url, [_job("a", _facts(6, "six@example.com", 7)),
                                          _job("b", _facts(5, "five@example.com", 7))])
    assert [o["verdict"] for o in out] == ["apply", "stale"]
    assert _group_outcome(db_url, 7)[:3] == ("six@example.com", "unfulfilled", 2)
    with session(db_url) as s:
        assert len(s.exec(select(store.WebhookDelivery)).all()) == 2


def test_messages_are_confirmed_and_recorded_in_one_write_each_once(db_url):
    """The batched message ledger: attempts counted before sending, confirmations with their
    Message-ID and one message row each; a confirmation written twice records nothing twice, a
    failure never undoes a confirmation."""
    from tasks.db.models import Message

    keys = [f"msg:{i}:order_confirmation" for i in range(3)]
    with session(db_url) as s:
        for k in keys:
            s.add(Effect(effect_key=k, kind="message", subject="order:1", idempotency_key=k, request={}))
        s.commit()
    ledger.count_attempts(db_url, keys)
    sent = [{"effect_key": k, "order_id": i, "template": "order_confirmation", "language": "en",
             "to": f"c{i}@example.com", "subject": "Thanks", "message_id": f"<{i}@shop>"} for i, k in enumerate(keys[:2])]
    ledger.confirm_messages(db_url, sent)
    ledger.confirm_messages(db_url, sent[:1])  # a re-run confirming again
    ledger.mark_effects_failed(db_url, [(keys[0], RuntimeError("late")), (keys[2], OSError("connection lost"))])
    with session(db_url) as s:
        rows = {e.effect_key: e for e in s.exec(select(Effect)).all()}
        messages = s.exec(select(Message).order_by(Message.order_id)).all()
    assert [(rows[k].status, rows[k].attempts) for k in keys] == [("confirmed", 1), ("confirmed", 1), ("failed", 1)]
    assert rows[keys[1]].result == {"message_id": "<1@shop>"} and rows[keys[2]].last_error == "OSError: connection lost"
    assert [(m.order_id, m.message_id, m.to_address) for m in messages] == [(0, "<0@shop>", "c0@example.com"),
                                                                          (1, "<1@shop>", "c1@example.com")]
    ledger.count_attempts(db_url, keys)  # a confirmed effect is not attempted again
    with session(db_url) as s:
        assert [s.exec(select(Effect.attempts).where(Effect.effect_key == k)).one() for k in keys] == [1, 1, 2]
