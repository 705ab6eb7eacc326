"""SOP 1's records: parcels, per-order communication state, follow-ups due, reply tickets, metrics.

Every read and write takes a whole batch of orders (one query each), never one order at a time.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Iterable

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from tasks.db.engine import session
from tasks.db.models import (AuditLog, CancelRequest, Message, Order, OrderComms, Parcel, Ticket,
                             utcnow)
from tasks.db.store import as_utc


def _chunks(ids: list[int], n: int = 500) -> Iterable[list[int]]:
    for i in range(0, len(ids), n):
        yield ids[i:i + n]


def order_snapshots(url: str, order_ids: list[int]) -> dict[str, dict[int, Any]]:
    """{"snapshots": order id -> its latest REST snapshot, "stages": order id -> its recorded stage}."""
    out: dict[str, dict[int, Any]] = {"snapshots": {}, "stages": {}}
    with session(url) as s:
        for ids in _chunks(sorted(set(order_ids))):
            for o in s.exec(select(Order).where(Order.id.in_(ids))).all():
                out["snapshots"][o.id], out["stages"][o.id] = o.snapshot or {}, o.stage
    return out


def parcels_of_orders(url: str, order_ids: list[int]) -> dict[int, Parcel]:
    """fulfillment id -> parcel, for every parcel of these orders."""
    out: dict[int, Parcel] = {}
    with session(url) as s:
        for ids in _chunks(sorted(set(order_ids))):
            for p in s.exec(select(Parcel).where(Parcel.order_id.in_(ids))).all():
                p.updated_at = as_utc(p.updated_at)
                out[p.fulfillment_id] = p
    return out


def save_parcels(url: str, parcels: list[dict[str, Any]]) -> int:
    if not parcels:
        return 0
    with session(url) as s:
        have = {p.fulfillment_id: p for p in s.exec(select(Parcel).where(
            Parcel.fulfillment_id.in_([p["fulfillment_id"] for p in parcels]))).all()}
        for p in parcels:
            row = have.get(p["fulfillment_id"])
            if row is None:
                s.add(Parcel(**p))
            else:
                for k, v in p.items():
                    setattr(row, k, v)
                s.add(row)
        s.commit()
    return len(parcels)


def comms_of(url: str, order_ids: list[int]) -> dict[int, OrderComms]:
    out: dict[int, OrderComms] = {}
    with session(url) as s:
        for ids in _chunks(sorted(set(order_ids))):
            for c in s.exec(select(OrderComms).where(OrderComms.order_id.in_(ids))).all():
                out[c.order_id] = c
    return out


def save_comms(url: str, updates: dict[int, dict[str, Any]]) -> int:
    """Upsert fields of order_comms rows (order id -> fields)."""
    if not updates:
        return 0
    with session(url) as s:
        have = {c.order_id: c for ids in _chunks(sorted(updates))
                for c in s.exec(select(OrderComms).where(OrderComms.order_id.in_(ids))).all()}
        for oid, fields in updates.items():
            row = have.get(oid) or OrderComms(order_id=oid)
            for k, v in fields.items():
                setattr(row, k, v)
            s.add(row)
        s.commit()
    return len(updates)


def due_followups(url: str, now: datetime, limit: int) -> list[int]:
    with session(url) as s:
        rows = s.exec(select(OrderComms.order_id).where(OrderComms.followup_status == "due",
                                                        OrderComms.followup_due_at <= now)
                      .order_by(OrderComms.followup_due_at).limit(limit)).all()
    return list(rows)


def undelivered_parcels(url: str, shipped_before: datetime, limit: int) -> list[Parcel]:
    """Parcels still with the carrier that left before `shipped_before` (candidates for a passed promise)."""
    with session(url) as s:
        rows = s.exec(select(Parcel).where(Parcel.stage.in_(["shipped", "in_transit", "out_for_delivery"]),
                                           Parcel.shipped_at.is_not(None), Parcel.shipped_at < shipped_before)
                      .order_by(Parcel.shipped_at).limit(limit)).all()
    for p in rows:
        p.updated_at, p.shipped_at = as_utc(p.updated_at), as_utc(p.shipped_at)
    return list(rows)


def open_items(url: str, order_ids: list[int]) -> dict[int, dict[str, int]]:
    """Per order: open tickets and open cancellation requests (returns are read from Shopify)."""
    out: dict[int, dict[str, int]] = {oid: {"ticket": 0, "cancellation": 0} for oid in order_ids}
    with session(url) as s:
        for ids in _chunks(sorted(set(order_ids))):
            for oid, n in s.exec(select(Ticket.order_id, func.count()).where(
                    Ticket.order_id.in_(ids), Ticket.status == "open").group_by(Ticket.order_id)).all():
                out[oid]["ticket"] = n
            for oid, n in s.exec(select(CancelRequest.order_id, func.count()).where(
                    CancelRequest.order_id.in_(ids), CancelRequest.open_key.is_not(None))
                    .group_by(CancelRequest.order_id)).all():
                out[oid]["cancellation"] = n
    return out


def message_for_reply(url: str, message_ids: list[str]) -> Message | None:
    """The message a reply answers (its In-Reply-To / References Message-IDs, newest first).
    A message whose row is not written yet (the customer answered the moment it arrived) is found
    through its ledger row: our Message-IDs name their effect (tasks/clients/mailer.message_id_for)."""
    from tasks.clients.mailer import effect_key_of
    from tasks.db.models import Effect

    if not message_ids:
        return None
    keys = {mid: effect_key_of(mid) for mid in message_ids}
    with session(url) as s:
        rows = s.exec(select(Message).where(Message.message_id.in_(message_ids))).all()
        effects = s.exec(select(Effect).where(Effect.effect_key.in_([k for k in keys.values() if k]),
                                              Effect.kind == "message")).all()
    by_id = {m.message_id: m for m in rows}
    by_key = {e.effect_key: e for e in effects}
    for mid in message_ids:
        if mid in by_id:
            return by_id[mid]
        e = by_key.get(keys[mid])
        if e is not None and (e.request or {}).get("template"):
            r = e.request
            order_id = r.get("order_id")
            if order_id is None and (e.subject or "").startswith("order:"):
                order_id = int(e.subject.split(":", 1)[1])
            return Message(order_id=order_id, template=r["template"], language=r.get("language", ""),
                           to_address=r.get("to", ""), subject=r.get("subject", ""), effect_key=e.effect_key,
                           message_id=mid)
    return None


def add_ticket(url: str, ticket: Ticket) -> tuple[Ticket, bool]:
    """Insert a ticket once per external id (a provider retrying the same mail adds nothing).
    Returns (ticket, created)."""
    def existing() -> Ticket | None:
        with session(url) as s:
            return s.exec(select(Ticket).where(Ticket.external_id == ticket.external_id,
                                               Ticket.channel == ticket.channel)).first() if ticket.external_id else None

    if (found := existing()) is not None:
        return found, False
    with session(url) as s:
        s.add(ticket)
        try:
            s.flush()
        except IntegrityError:  # the same mail, delivered concurrently: the other insert stands
            s.rollback()
            return existing(), False
        s.add(AuditLog(actor=f"customer:{ticket.channel}", action="ticket.opened",
                       subject=f"order:{ticket.order_id}" if ticket.order_id else f"ticket:{ticket.id}",
                       detail={"ticket": ticket.id, "reply_to": ticket.reply_to_template}))
        s.commit()
        s.refresh(ticket)
        return ticket, True


def record_link_open(url: str, kind: str, order_id: int) -> None:
    """A customer opened a self-serve link (address, cancel, edit): counted against tickets."""
    with session(url) as s:
        s.add(AuditLog(actor="customer:self_serve", action=f"link.opened.{kind}", subject=f"order:{order_id}",
                       detail={}))
        s.commit()


# ------------------------------------------------------------------ metrics

def message_metrics(url: str, since: datetime, until: datetime | None = None) -> dict[str, list[dict[str, Any]]]:
    """Messages sent by template; tickets opened within 48 h after each template (the questions
    customers still ask); self-serve link opens against tickets by request type."""
    since, until = as_utc(since), as_utc(until or utcnow())
    with session(url) as s:
        msgs = s.exec(select(Message).where(Message.sent_at >= since, Message.sent_at < until)).all()
        order_ids = sorted({m.order_id for m in msgs if m.order_id})
        tickets = [t for ids in _chunks(order_ids) for t in s.exec(
            select(Ticket).where(Ticket.order_id.in_(ids), Ticket.created_at >= since)).all()]
        all_tickets = s.exec(select(Ticket).where(Ticket.created_at >= since, Ticket.created_at < until)).all()
        opens = s.exec(select(AuditLog.action, func.count()).where(
            AuditLog.action.like("link.opened.%"), AuditLog.at >= since, AuditLog.at < until)
            .group_by(AuditLog.action)).all()
    sent = Counter(m.template for m in msgs)
    by_order: dict[int, list[datetime]] = {}
    for t in tickets:
        by_order.setdefault(t.order_id, []).append(as_utc(t.created_at))
    followed = Counter()
    for m in msgs:
        at = as_utc(m.sent_at)
        if any(at <= t <= at + timedelta(hours=48) for t in by_order.get(m.order_id, [])):
            followed[m.template] += 1
    kinds = {"address": "address_change", "edit": "order_edit", "cancel": "cancel_order"}
    clicks = {kinds.get(a.rsplit(".", 1)[-1], a): n for a, n in opens}
    by_intent = Counter(t.intent or "untriaged" for t in all_tickets)
    return {
        "by_template": [{"template": t, "sent": n, "orders_with_ticket_within_48h": followed[t],
                         "ticket_rate": round(followed[t] / n, 3) if n else 0.0} for t, n in sorted(sent.items())],
        "self_serve_vs_tickets": [{"request_type": k, "self_serve_link_opens": clicks.get(k, 0),
                                   "tickets": by_intent.get(k, 0)}
                                  for k in sorted(set(clicks) | set(by_intent))],
    }

