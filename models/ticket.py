"""Tickets (工单), their audit trail, attachments and supervisor notices."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow

CATEGORIES = ("repair", "complaint", "inquiry", "billing")
PRIORITIES = ("normal", "urgent")
OPEN_STATUSES = ("new", "assigned", "in_progress")


class TicketCounter(Base):
    """The last sequence number handed out per local day, for GD20261126-0007."""

    __tablename__ = "ticket_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last: Mapped[int] = mapped_column(default=0)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        Index("ix_tickets_status_id", "status", "id"),
        Index("ix_tickets_department_id_id", "department_id", "id"),
        Index("ix_tickets_category_id", "category", "id"),
        Index("ix_tickets_account_id", "account_number", "id"),
        Index("ix_tickets_phone_id", "contact_phone", "id"),
        Index("ix_tickets_open_due", "status", "resolution_due_at"),
        Index("ix_tickets_next_escalation", "next_escalation_at"),
        Index("ix_tickets_area_created", "area", "created_at"),
        # Another system's number for the same case (a 12345 order number), unique per channel.
        Index("ux_tickets_channel_external_ref", "channel", "external_ref", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)
    category: Mapped[str] = mapped_column(String(20))
    business_type: Mapped[str] = mapped_column(String(40))
    priority: Mapped[str] = mapped_column(String(10), default="normal")
    channel: Mapped[str] = mapped_column(String(10))
    external_ref: Mapped[str | None] = mapped_column(String(64))  # e.g. the 12345 order number (工单编号)
    status: Mapped[str] = mapped_column(String(20), default="new")

    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    account_number: Mapped[str | None] = mapped_column(String(32))
    contact_name: Mapped[str] = mapped_column(String(100), default="")
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(255), default="")
    latitude: Mapped[float | None]
    longitude: Mapped[float | None]
    description: Mapped[str] = mapped_column(Text)

    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"), index=True)

    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    response_due_at: Mapped[dt.datetime]
    resolution_due_at: Mapped[dt.datetime]
    responded_at: Mapped[dt.datetime | None]
    resolved_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]

    # When the current time limits started: creation, or the last reopen.
    clock_started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Escalation state lives here so a restart neither loses nor repeats a step.
    escalation_level: Mapped[int] = mapped_column(default=0)
    next_escalation_at: Mapped[dt.datetime | None]

    satisfaction: Mapped[int | None]
    callback_result: Mapped[str | None] = mapped_column(Text)
    callback_due_at: Mapped[dt.datetime | None]
    callback_at: Mapped[dt.datetime | None]
    reopen_count: Mapped[int] = mapped_column(default=0)

    # Repairs: the crew's arrival (到场) and its limit.
    on_site_due_at: Mapped[dt.datetime | None]
    arrived_at: Mapped[dt.datetime | None]
    # An extension (延期) the department asked for, until the supervisor decides.
    extension_due_at: Mapped[dt.datetime | None]
    extension_reason: Mapped[str | None] = mapped_column(Text)
    extension_requested_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    # The area the report is about (the account's, or the address matched): what incidents cluster by.
    area: Mapped[str | None] = mapped_column(String(64))

    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", lazy="raise")


class TicketEvent(Base):
    """Append-only audit trail: one row per change, never updated."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(30))
    actor_kind: Mapped[str] = mapped_column(String(20))  # staff, service, system, resident
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    actor_name: Mapped[str] = mapped_column(String(100), default="")
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str | None] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    ticket: Mapped[Ticket] = relationship(back_populates="events")


class TicketAttachment(Base):
    """An image, voice message or call recording that belongs to a ticket."""

    __tablename__ = "ticket_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    uri: Mapped[str] = mapped_column(String(500))
    media_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """A notice to one staff member (督办), shown in the console until read."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_staff_unread", "staff_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None]
