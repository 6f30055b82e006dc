"""The audit of personal-data housekeeping: each retention purge, export and erasure (保存期限, 查阅与删除)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

PRIVACY_RUN_KINDS = ("purge", "export", "erase")
PRIVACY_RUN_STATUSES = ("running", "done", "failed")


class PrivacyRun(Base):
    """One purge, export or erasure: who, when, about whom, what was done (counts per kind of data).

    The subject is kept as a digest (sha256 of "phone:…", "openid:…" or "account:…"), never as the
    phone or openid an erasure has just removed: an auditor who knows the number can still find the row.
    `lock_key` is unique while held: the scheduled purge claims "purge:<day>" so that two service
    processes never purge at once, and releases it (NULL) when a run fails so a later one may retry.
    """

    __tablename__ = "privacy_runs"
    __table_args__ = (Index("ix_privacy_runs_kind_started", "kind", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # purge, export, erase
    status: Mapped[str] = mapped_column(String(10), default="running")
    dry_run: Mapped[bool] = mapped_column(default=False)
    actor_kind: Mapped[str] = mapped_column(String(20), default="system")  # system (the daily job), staff, cli
    actor_name: Mapped[str] = mapped_column(String(100), default="")
    subject_digest: Mapped[str | None] = mapped_column(String(64), index=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None]
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)  # kind of data → rows (or files) handled
    # A purge's cutoff per kind (ISO time): the next purge starts a day before it instead of at the beginning.
    cutoffs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    longest_batch_ms: Mapped[float | None]
    error: Mapped[str | None] = mapped_column(Text)
    lock_key: Mapped[str | None] = mapped_column(String(40), unique=True)


def _indexes() -> None:
    """Indexes the retention purge walks on tables other models own (migration 0013)."""
    from models.callback import CallbackTask
    from models.conversation import Conversation, Message
    from models.ticket import Notification, Ticket

    Index("ix_messages_created_at", Message.created_at)
    Index("ix_tickets_closed_at", Ticket.closed_at)
    Index("ix_conversations_updated_at", Conversation.updated_at)
    Index("ix_notifications_ticket_id", Notification.ticket_id)
    Index("ix_callback_tasks_conversation_id", CallbackTask.conversation_id)


_indexes()
