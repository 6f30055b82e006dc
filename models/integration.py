"""Integrations with other systems: the durable outbox, replay guard, and 12345 work orders.

The outbox is the one way the service tells another system something: a row is
written in the same transaction as the change it reports, and a worker
(hotline/integrations/outbox.py) delivers it afterwards, in order per key, until
the other side accepts it. 12345 is its first user; SMS and billing will follow.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

OUTBOX_STATES = ("pending", "sent", "failed")  # failed: a 4xx or retries exhausted, waiting for an admin


class OutboxMessage(Base):
    """One message to another system; `next_attempt_at` is what the worker claims (and a lease while sending)."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_due", "state", "next_attempt_at"),
        Index("ix_outbox_messages_key", "target", "key", "id"),
        Index("ix_outbox_messages_ticket", "ticket_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(20))  # the system: gov12345, later sms, billing
    kind: Mapped[str] = mapped_column(String(20))  # what it is on that system: sign, progress, reply …
    key: Mapped[str] = mapped_column(String(64))  # messages with one key are delivered in id order (an order number)
    message_id: Mapped[str] = mapped_column(String(40), unique=True)  # the other side de-duplicates by it
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    state: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[dt.datetime | None]


class InboundNonce(Base):
    """A signed push seen recently (its signature's digest), so the same push is refused the second time.

    In the database, not in memory, so that several service processes share it.
    """

    __tablename__ = "inbound_nonces"
    __table_args__ = (Index("ix_inbound_nonces_seen_at", "seen_at"),)

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    target: Mapped[str] = mapped_column(String(20))
    seen_at: Mapped[dt.datetime]


class Gov12345Order(Base):
    """A work order (工单) dispatched by the city's 12345 hotline, and where it stands with 12345."""

    __tablename__ = "gov12345_orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_no: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    type: Mapped[str] = mapped_column(String(100))  # 诉求类型 as 12345 names it
    routed: Mapped[bool] = mapped_column(default=True)  # False: the type was not in the mapping; a person routes it
    urgency: Mapped[str] = mapped_column(String(10), default="normal")
    accepted_at: Mapped[dt.datetime]  # 受理时间 at 12345
    sign_due_at: Mapped[dt.datetime]  # 签收时限
    due_at: Mapped[dt.datetime]  # 办理时限 (moved by an approved extension or a re-dispatch)
    signed_at: Mapped[dt.datetime | None]
    # A request waiting for 12345's decision: extension or return, with our message id and the reason.
    pending_request: Mapped[str | None] = mapped_column(String(10))
    pending_message_id: Mapped[str | None] = mapped_column(String(40))
    pending_reason: Mapped[str | None] = mapped_column(Text)
    chases: Mapped[int] = mapped_column(default=0)
    last_chased_at: Mapped[dt.datetime | None]
    satisfaction: Mapped[str | None] = mapped_column(String(20))  # 12345's callback: 满意 / 基本满意 / 不满意
    redispatches: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(12), default="open")  # open, returned (12345 took it back)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)  # the order as 12345 sent it
    history: Mapped[list[Any]] = mapped_column(default=list)  # [{at, kind, …}] what 12345 sent about it
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
