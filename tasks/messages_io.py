"""Customer messages in bulk (SOP 1): one task renders and mails a whole batch over one SMTP session.

Each message goes through the effects ledger under its decision's key (one message per order,
template and state change, ever). The ledger rows are written first, with everything needed to
render the message again, so a mail server that is down loses nothing: `resend_stuck_messages`
(run by the customer-messages schedule) sends what is still pending or failed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from config.settings import load_settings
from tasks.clients.factory import mailer
from tasks.db.engine import session
from tasks.db.models import Effect, utcnow
from tasks.db.ledger import confirm_messages, count_attempts, mark_effects_failed


def _ledger(database_url: str, messages: list[dict[str, Any]]) -> set[str]:
    """Write a pending ledger row for every message not in the ledger; returns the keys already confirmed."""
    keys = [m["effect_key"] for m in messages]
    with session(database_url) as s:
        have = {e.effect_key: e.status for e in s.exec(select(Effect).where(Effect.effect_key.in_(keys))).all()}
        for m in messages:
            if m["effect_key"] in have:
                continue
            s.add(Effect(effect_key=m["effect_key"], kind="message", subject=f"order:{m['order_id']}",
                         idempotency_key=m["effect_key"], request=_request(m)))
            have[m["effect_key"]] = "pending"
        try:
            s.commit()
        except IntegrityError:  # another run wrote some of them: theirs stand
            s.rollback()
    return {k for k, st in have.items() if st == "confirmed"}


def _request(m: dict[str, Any]) -> dict[str, Any]:
    return {"to": m["to"], "template": m["template"], "language": m["language"], "order_id": m["order_id"],
            "context": m["context"]}


CHUNK = 25  # messages whose attempts are counted in one write


def deliver(database_url: str, messages: list[dict[str, Any]], sessions: int | None = None) -> dict[str, int]:
    """Send each message once (through the ledger) over a few SMTP sessions at once; a message that
    fails stays in the ledger as failed and is sent by the next resend.

    The ledger rows are pending before anything is sent. The messages are shared among `sessions` SMTP
    sessions (default: the `smtp_sessions` setting) by order (one order's messages go out on one
    session, in the order given), so the waits on the mail server overlap. In each session, chunk by
    chunk: one write counts the chunk's attempts, the chunk is sent, and one write confirms the sent
    messages (with their Message-IDs) and records them. A customer's reply that arrives before that
    write still finds its order: the Message-ID names the effect (comms_store.message_for_reply). A
    crash between a send and the chunk's write leaves those messages pending; the resend sends them
    again (SMTP has no idempotency key) with the same Message-IDs, so the customer's mail program shows
    each once. A mail server that cannot be reached fails the call; what was not sent stays pending for
    the retry."""
    from concurrent.futures import ThreadPoolExecutor

    counts = {"sent": 0, "already_sent": 0, "failed": 0}
    if not messages:
        return counts
    done = _ledger(database_url, messages)
    todo = [m for m in messages if m["effect_key"] not in done]
    counts["already_sent"] = len(messages) - len(todo)
    if not todo:
        return counts
    settings = load_settings()
    m_client = mailer(settings)
    n = max(1, min(sessions or settings.smtp_sessions, -(-len(todo) // CHUNK)))
    shares: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    for m in todo:
        shares[hash(m["order_id"]) % n].append(m)
    if n == 1:
        results = [_send_share(database_url, m_client, shares[0])]
    else:
        with ThreadPoolExecutor(n, thread_name_prefix="smtp") as pool:
            results = list(pool.map(lambda share: _send_share(database_url, m_client, share), shares))
    for sent, failed in results:
        counts["sent"] += sent
        counts["failed"] += failed
    return counts


def _send_share(database_url: str, m_client, share: list[dict[str, Any]]) -> tuple[int, int]:
    """One SMTP session's messages, chunk by chunk: (sent, failed)."""
    from config.messages import TemplateMissing, render

    sent = failed_total = 0
    if not share:
        return 0, 0
    with m_client.connection() as smtp:
        for i in range(0, len(share), CHUNK):
            chunk = share[i:i + CHUNK]
            count_attempts(database_url, [m["effect_key"] for m in chunk])
            failed, outs = [], []
            for m in chunk:
                try:
                    msg = render(m["template"], m["language"], m["context"])
                except (TemplateMissing, Exception) as exc:  # noqa: BLE001 - recorded, never half-sent
                    failed.append((m["effect_key"], exc))
                    continue
                headers = {"X-Aftercart-Template": m["template"],
                           "X-Aftercart-Order": str(m["context"].get("order_name")), "Content-Language": m["language"]}
                mail = m_client.compose(m["to"], msg.subject, msg.text, msg.html, headers, m["effect_key"])
                try:
                    out = {"effect_key": m["effect_key"], "order_id": m["order_id"], "template": m["template"],
                           "language": m["language"], "to": m["to"], "subject": msg.subject, "message_id": smtp(mail)}
                except Exception as exc:  # noqa: BLE001 - the ledger row says failed; the resend picks it up
                    failed.append((m["effect_key"], exc))
                    continue
                outs.append(out)
            confirm_messages(database_url, outs)
            sent += len(outs)
            mark_effects_failed(database_url, failed)
            failed_total += len(failed)
    return sent, failed_total


@task(retries=3, retry_delay_seconds=[2, 10, 30])
def send_customer_messages(database_url: str, messages: list[dict[str, Any]]) -> dict[str, int]:
    """One batch of decided messages: {order_id, to, template, language, context, effect_key} each."""
    counts = deliver(database_url, messages)
    if counts["failed"]:
        get_run_logger().warning("%s of %s messages failed; they stay in the ledger and are resent", counts["failed"],
                                 len(messages))
    return counts


@task(retries=2, retry_delay_seconds=[10, 60])
def resend_stuck_messages(database_url: str, older_than_seconds: float = 60.0, limit: int = 2000) -> dict[str, int]:
    """Messages written to the ledger but not confirmed (the mail server was down, the process
    died between ledger and send): send them now, from what the ledger kept."""
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    with session(database_url) as s:
        rows = s.exec(select(Effect).where(Effect.kind == "message", Effect.status.in_(["pending", "failed"]),
                                           Effect.updated_at < cutoff).limit(limit)).all()
    messages = [{"effect_key": r.effect_key, **r.request} for r in rows if "context" in (r.request or {})]
    return deliver(database_url, messages)
