"""Call records (呼叫记录), inbound through the IVR and outbound from the dialler, and the dialler's queue."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

CALL_DIRECTIONS = ("inbound", "outbound")
CALL_PURPOSES = ("callback", "outage_notice")


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (Index("ix_calls_direction_id", "direction", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sip_call_id: Mapped[str] = mapped_column(String(255), unique=True)
    caller: Mapped[str] = mapped_column(String(64), index=True)
    callee: Mapped[str] = mapped_column(String(64), default="")
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    answered_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    menu_path: Mapped[list[Any]] = mapped_column(default=list)
    digits: Mapped[str] = mapped_column(String(255), default="")
    account_number: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(20))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    recording_path: Mapped[str | None] = mapped_column(String(500))
    # Outbound calls: why we called, about what, and the SIP status that ended an unanswered one.
    direction: Mapped[str] = mapped_column(String(8), default="inbound", server_default="inbound")
    purpose: Mapped[str | None] = mapped_column(String(20))
    outage_id: Mapped[int | None] = mapped_column(ForeignKey("outages.id", ondelete="SET NULL"))
    callback_task_id: Mapped[int | None] = mapped_column(ForeignKey("callback_tasks.id", ondelete="SET NULL"))
    sip_status: Mapped[int | None]


class OutboundJob(Base):
    """One number to call for one purpose; the dialler claims due jobs by `next_attempt_at`.

    A callback job is one attempt of its callback task (the task's [callback] attempts and spacing
    decide the next); an outage job retries itself, at most once per phone per outage."""

    __tablename__ = "outbound_jobs"
    __table_args__ = (
        UniqueConstraint("outage_id", "phone"),  # each phone once per outage (NULLs never collide)
        Index("ix_outbound_jobs_next_attempt", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(20))  # callback, outage_notice
    phone: Mapped[str] = mapped_column(String(32))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    callback_task_id: Mapped[int | None] = mapped_column(ForeignKey("callback_tasks.id", ondelete="CASCADE"))
    outage_id: Mapped[int | None] = mapped_column(ForeignKey("outages.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(12), default="queued")  # queued, dialling, done
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=1)
    next_attempt_at: Mapped[dt.datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
