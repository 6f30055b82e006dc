"""Callback tasks (回访任务): asking the resident, after a resolution, whether it was resolved."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

CALLBACK_STATES = ("pending", "in_progress", "answered", "unreachable", "expired")
CALLBACK_RESULTS = ("satisfied", "basically_satisfied", "dissatisfied", "unclear", "unreachable")


class CallbackTask(Base):
    """One callback for one resolution of a ticket; `next_attempt_at` is what the scheduler claims."""

    __tablename__ = "callback_tasks"
    __table_args__ = (
        UniqueConstraint("ticket_id", "resolution"),  # never asked twice for the same resolution
        Index("ix_callback_tasks_next_attempt", "next_attempt_at"),
        Index("ix_callback_tasks_resident", "resident_channel", "external_user", "state"),
        Index("ix_callback_tasks_state_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    resolution: Mapped[int] = mapped_column(default=0)  # the ticket's reopen count when it was resolved
    channel: Mapped[str] = mapped_column(String(10))  # where the survey goes: the ticket's channel
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    # The resident on that channel (WeChat openid, browser id), so an answer is found from any conversation.
    resident_channel: Mapped[str | None] = mapped_column(String(10))
    external_user: Mapped[str | None] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(12), default="pending")
    manual: Mapped[bool] = mapped_column(default=False)  # in the console's 回访任务 list for an agent
    due_at: Mapped[dt.datetime]
    expires_at: Mapped[dt.datetime]
    next_attempt_at: Mapped[dt.datetime | None]
    asked_at: Mapped[dt.datetime | None]  # the survey's last question to the resident
    reasks: Mapped[int] = mapped_column(default=0)  # unclear answers asked again
    attempts: Mapped[list[Any]] = mapped_column(default=list)  # [{channel, at, result}]
    result: Mapped[str | None] = mapped_column(String(20))
    answered_at: Mapped[dt.datetime | None]
    answered_by: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
