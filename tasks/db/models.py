"""The operational store: aftercart's business record, complete even when Prefect drops an event."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Optional

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from config import clock


def utcnow() -> datetime:
    return clock.now()


def _ts(**kw) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


class Order(SQLModel, table=True):
    """Latest known snapshot of a Shopify order; `version` grows with every accepted change."""

    __tablename__ = "orders"
    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    shop: str = Field(index=True)
    name: str = Field(index=True)
    email: Optional[str] = None
    customer_locale: Optional[str] = None
    country_code: Optional[str] = None
    stage: str = "unfulfilled"
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    snapshot: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    shopify_updated_at: datetime = _ts(nullable=False)
    version: int = 1
    created_at: datetime = _ts(nullable=False, default=utcnow)
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class WebhookDelivery(SQLModel, table=True):
    """The webhook inbox: every delivery with a valid signature, raw, before it is answered."""

    __tablename__ = "webhook_inbox"
    __table_args__ = (UniqueConstraint("shop", "webhook_id", name="uq_inbox_shop_webhook"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    shop: str
    webhook_id: str
    event_id: Optional[str] = None
    topic: str = Field(index=True)
    api_version: Optional[str] = None
    triggered_at: Optional[str] = None
    received_at: datetime = _ts(nullable=False, default=utcnow)
    # accepted -> processed | stale; ignored (unknown topic); rejected (malformed body)
    status: str = Field(index=True)
    order_id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, index=True))
    body: str = Field(sa_column=Column(Text, nullable=False))
    error: Optional[str] = None
    processed_at: Optional[datetime] = _ts(nullable=True)


class Effect(SQLModel, table=True):
    """Effects ledger: one row per side effect, written before the call, keyed by business ids."""

    __tablename__ = "effects"
    id: Optional[int] = Field(default=None, primary_key=True)
    effect_key: str = Field(unique=True)
    kind: str = Field(index=True)  # hold, release, tag, edit, cancel, refund, message, 3pl...
    subject: str = Field(index=True)  # e.g. "order:1042"
    idempotency_key: str
    status: str = Field(default="pending", index=True)  # pending | sent | confirmed | failed
    attempts: int = 0
    last_error: Optional[str] = None
    request: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    result: Optional[dict] = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = _ts(nullable=False, default=utcnow)
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class Decision(SQLModel, table=True):
    __tablename__ = "decisions"
    id: Optional[int] = Field(default=None, primary_key=True)
    sop: str = Field(index=True)
    subject: str = Field(index=True)
    outcome: str
    reasons: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    rule: Optional[str] = None
    policy_version: str
    policy_hash: str
    actor: str = "aftercart"
    decided_at: datetime = _ts(nullable=False, default=utcnow)
    inputs: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Approval(SQLModel, table=True):
    __tablename__ = "approvals"
    id: str = Field(primary_key=True)
    kind: str = Field(index=True)
    order_id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, index=True))
    order_name: Optional[str] = None
    role: str = Field(index=True)
    status: str = Field(default="pending", index=True)  # pending | approved | rejected | defaulted
    asked: str = ""
    rule: Optional[str] = None
    allowed_decisions: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    requested_at: datetime = _ts(nullable=False, default=utcnow)
    deadline: datetime = _ts(nullable=False)
    escalations: int = 0
    flow_run_id: Optional[str] = None
    decision: Optional[str] = None
    decided_by: Optional[str] = None
    note: Optional[str] = None
    decided_at: Optional[datetime] = _ts(nullable=True)
    policy_version: str = ""
    policy_hash: str = ""
    refusals: int = 0  # decisions refused so far (each re-opens the wait under a new key)
    context: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))
    address_verdict: Optional[str] = None
    decided_address: Optional[dict] = Field(default=None, sa_column=Column(JSON, nullable=True))


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_order_template", "order_id", "template"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    order_id: Optional[int] = Field(default=None, sa_column=Column(BigInteger))
    template: str
    language: str
    to_address: str
    subject: str = ""
    effect_key: str = Field(unique=True)
    sent_at: datetime = _ts(nullable=False, default=utcnow)
    message_id: Optional[str] = Field(default=None, index=True)  # the Message-ID header: replies name it


class Ticket(SQLModel, table=True):
    __tablename__ = "tickets"
    __table_args__ = (UniqueConstraint("channel", "external_id", name="uq_tickets_channel_external_id"),)
    id: Optional[int] = Field(default=None, primary_key=True)
    external_id: Optional[str] = Field(default=None, index=True)
    channel: str
    customer_email: Optional[str] = Field(default=None, index=True)
    order_id: Optional[int] = Field(default=None, sa_column=Column(BigInteger, index=True))
    text: str = Field(default="", sa_column=Column(Text, nullable=False))
    intent: Optional[str] = None
    route: Optional[str] = None
    urgency: Optional[str] = None
    duplicate_of: Optional[int] = None
    status: str = "open"
    created_at: datetime = _ts(nullable=False, default=utcnow)
    reply_to_template: Optional[str] = None  # the message the customer answered, when the ticket is a reply


class Parcel(SQLModel, table=True):
    """One fulfillment (a parcel) and the carrier's latest word on it (SOP 1 decides messages from it)."""

    __tablename__ = "parcels"
    fulfillment_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    order_id: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    stage: str = Field(index=True)
    tracking_number: Optional[str] = None
    lines: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = _ts(nullable=False)
    shipped_at: Optional[datetime] = _ts(nullable=True)  # first seen with the carrier


class OrderComms(SQLModel, table=True):
    """Per order, what SOP 1 remembers between events: a pending payment, delivery, the follow-up."""

    __tablename__ = "order_comms"
    order_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    payment_pending: bool = False
    delivered_at: Optional[datetime] = _ts(nullable=True)
    followup_due_at: Optional[datetime] = _ts(nullable=True, index=True)
    followup_status: Optional[str] = None
    followup_reason: Optional[str] = None


class AuditLog(SQLModel, table=True):
    """Append-only: the migration installs triggers that refuse UPDATE and DELETE."""

    __tablename__ = "audit_log"
    id: Optional[int] = Field(default=None, primary_key=True)
    at: datetime = _ts(nullable=False, default=utcnow)
    actor: str
    action: str = Field(index=True)
    subject: str = Field(index=True)
    detail: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Cursor(SQLModel, table=True):
    """Named positions of scheduled sweeps (e.g. the reconciliation's last `updated_at`)."""

    __tablename__ = "cursors"
    name: str = Field(primary_key=True)
    value: str
    updated_at: datetime = _ts(nullable=False, default=utcnow)


class AddressReview(SQLModel, table=True):
    """SOP 4's exception: one address under review, the customer's window and how it ended."""

    __tablename__ = "address_reviews"
    id: str = Field(primary_key=True)  # address:<order id>:<key of the address reviewed>
    order_id: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    order_name: str = ""
    status: str = Field(default="waiting", index=True)  # waiting | corrected | expired | resolved
    verdict: str = ""
    reasons: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    address: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    suggestions: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    language: str = "en"
    email: Optional[str] = None
    opened_at: datetime = _ts(nullable=False, default=utcnow)
    deadline: datetime = _ts(nullable=False)
    flow_run_id: Optional[str] = None
    attempts: int = 0  # corrections the customer submitted that did not validate
    corrected_address: Optional[dict] = Field(default=None, sa_column=Column(JSON, nullable=True))
    corrected_at: Optional[datetime] = _ts(nullable=True)
    outcome: Optional[str] = None  # customer_corrected | ship_as_is | corrected_by_approver | cancelled | kept_hold
    resolved_at: Optional[datetime] = _ts(nullable=True)
    policy_version: str = ""


class CancelRequest(SQLModel, table=True):
    """SOP 3: one customer request to cancel an order (duplicates join the open one)."""

    __tablename__ = "cancel_requests"
    id: Optional[int] = Field(default=None, primary_key=True)
    order_id: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    order_name: str = ""
    channel: str  # self_serve | email | chat | phone | social | sandbox
    reason: str = ""  # the customer's words or reason code
    amount: Optional[str] = None  # a partial refund asked for; None refunds what was captured
    # open key: the order id while the request is open, NULL once closed (one open request per order)
    open_key: Optional[int] = Field(default=None, sa_column=Column(BigInteger, unique=True, nullable=True))
    status: str = Field(default="open", index=True)  # open | waiting | applied | denied | refused | joined
    rule: Optional[str] = None
    error: Optional[str] = None
    joined_to: Optional[int] = Field(default=None, index=True)  # a duplicate: the open request it joined
    requested_at: datetime = _ts(nullable=False, default=utcnow)
    closed_at: Optional[datetime] = _ts(nullable=True)
    refunded: Optional[str] = None
    flow_run_id: Optional[str] = None  # the run serving it (a re-run of the same run is not a duplicate)
    policy_version: str = ""


class EditRequest(SQLModel, table=True):
    """SOP 2: one order modification request and how it ended."""

    __tablename__ = "edit_requests"
    id: Optional[int] = Field(default=None, primary_key=True)
    order_id: int = Field(sa_column=Column(BigInteger, index=True, nullable=False))
    order_name: str = ""
    channel: str  # self_serve | email | chat | phone | agent | scenario
    kind: str
    request: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default="open", index=True)  # open | waiting | applied | denied | refused
    edit_class: Optional[str] = None
    rule: Optional[str] = None
    error: Optional[str] = None
    stage: Optional[str] = None  # the live stage when decided
    requested_at: datetime = _ts(nullable=False, default=utcnow)
    closed_at: Optional[datetime] = _ts(nullable=True)
    flow_run_id: Optional[str] = None
    policy_version: str = ""


class OrderLock(SQLModel, table=True):
    """A short lease on one order while a run reads and changes it (edits on one order run serially)."""

    __tablename__ = "order_locks"
    order_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    holder: str
    expires_at: datetime = _ts(nullable=False)
