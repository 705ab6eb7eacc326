"""The effects ledger: one row per side effect, written before the call, keyed by business ids
(`perform_effect`), and the batched form the message sender uses. Plain functions taking a
database URL: no Prefect here."""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import bindparam, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from tasks.db.engine import session
from tasks.db.models import Effect, utcnow


def perform_effect(
    url: str,
    effect_key: str,
    kind: str,
    subject: str,
    request: dict[str, Any],
    call: Callable[[str], dict[str, Any]],
) -> dict[str, Any]:
    """Run a side effect at most once per `effect_key`.

    The ledger row (with its idempotency key) is written before the call. A confirmed effect
    returns its stored result without calling again; a pending or failed one is retried with the
    same idempotency key, so an API that honours the key (Shopify's `@idempotent`) never
    applies it twice even when the earlier reply was lost.
    """
    with session(url) as s:
        row = s.exec(select(Effect).where(Effect.effect_key == effect_key)).first()
        first = row is None
        if first:  # the first attempt is written with the row: one commit
            row = Effect(effect_key=effect_key, kind=kind, subject=subject, idempotency_key=effect_key, request=request,
                         attempts=1)
            s.add(row)
            try:
                s.commit()
            except IntegrityError:  # written meanwhile by another run
                s.rollback()
                row, first = s.exec(select(Effect).where(Effect.effect_key == effect_key)).one(), False
        if not first:
            if row.status == "confirmed":
                return row.result or {}
            row.attempts += 1
            row.updated_at = utcnow()
            s.add(row)
            s.commit()
        key = row.idempotency_key
    try:
        result = call(key)
    except Exception as exc:
        mark_effect_failed(url, effect_key, exc)
        raise
    with session(url) as s:
        row = s.exec(select(Effect).where(Effect.effect_key == effect_key)).one()
        row.status, row.result, row.last_error, row.updated_at = "confirmed", result, None, utcnow()
        s.add(row)
        s.commit()
    return result


def mark_effect_failed(url: str, effect_key: str, exc: BaseException) -> None:
    """Record why an effect failed (a confirmed one stays confirmed); the next attempt retries it."""
    mark_effects_failed(url, [(effect_key, exc)])


def count_attempts(url: str, effect_keys: list[str]) -> None:
    """One more attempt for each of these effects, written before they are tried."""
    if not effect_keys:
        return
    with session(url) as s:
        s.exec(update(Effect).where(Effect.effect_key.in_(effect_keys), Effect.status != "confirmed")
               .values(attempts=Effect.attempts + 1, updated_at=utcnow()).execution_options(synchronize_session=False))
        s.commit()


def mark_effects_failed(url: str, failures: list[tuple[str, BaseException]]) -> None:
    """`mark_effect_failed` for many, in one transaction."""
    if not failures:
        return
    t, now = Effect.__table__, utcnow()
    with session(url) as s:
        s.connection().execute(
            update(t).where(t.c.effect_key == bindparam("b_key"), t.c.status != "confirmed")
            .values(status="failed", last_error=bindparam("b_error"), updated_at=now),
            [{"b_key": k, "b_error": f"{type(e).__name__}: {e}"[:2000]} for k, e in failures])
        s.commit()


def confirm_messages(url: str, sent: list[dict[str, Any]]) -> None:
    """Messages that went out: their ledger rows confirmed with the Message-ID, and one message row
    each (a message recorded before is not recorded twice), in one transaction.
    Each: {effect_key, order_id, template, language, to, subject, message_id}."""
    from tasks.db.models import Message

    if not sent:
        return
    t, now = Effect.__table__, utcnow()
    keys = [m["effect_key"] for m in sent]
    with session(url) as s:
        s.connection().execute(
            update(t).where(t.c.effect_key == bindparam("b_key"))
            .values(status="confirmed", result=bindparam("b_result"), last_error=None, updated_at=now),
            [{"b_key": m["effect_key"], "b_result": {"message_id": m["message_id"]}} for m in sent])
        have = set(s.exec(select(Message.effect_key).where(Message.effect_key.in_(keys))).all())
        s.add_all([Message(order_id=m["order_id"], template=m["template"], language=m["language"], to_address=m["to"],
                           subject=m["subject"], effect_key=m["effect_key"], message_id=m["message_id"])
                   for m in sent if m["effect_key"] not in have])
        s.commit()


def record_message(url: str, order_id: int | None, template: str, language: str, to: str, subject: str,
                   effect_key: str, message_id: str | None = None) -> None:
    """One row per message sent (the effect key is unique: a re-run records nothing twice)."""
    from tasks.db.models import Message

    with session(url) as s:
        if s.exec(select(Message).where(Message.effect_key == effect_key)).first() is not None:
            return
        s.add(Message(order_id=order_id, template=template, language=language, to_address=to, subject=subject,
                      effect_key=effect_key, message_id=message_id))
        try:
            s.commit()
        except IntegrityError:
            s.rollback()
