"""What the agents' console keeps beyond conversations: each agent's presence (在线/忙碌/离开) and the
canned replies (快捷回复) supervisors manage."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

PRESENCE_STATES = ("online", "busy", "away")


class AgentPresence(Base):
    """One row per staff member who ever set a presence; no row means 离开 (never offered anything)."""

    __tablename__ = "agent_presence"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(10), default="away")  # online, busy, away
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # When the conversation queue last gave this agent a conversation: ties in the round-robin go to
    # whoever waited longest.
    last_assigned_at: Mapped[dt.datetime | None]


class CannedReply(Base):
    """A reply agents insert with /shortcut; {户号} {姓名} {工单号} … are filled from the conversation.
    Shared ones are the supervisors'; an agent may keep personal ones too."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    shortcut: Mapped[str] = mapped_column(String(32), unique=True)
    title: Mapped[str] = mapped_column(String(100))
    text: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # None: shared, kept by supervisors; a staff id: that agent's own, seen by nobody else (migration 0014).
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)


def _indexes() -> None:
    """Indexes the console's context panel and search need on tables other models own (migration 0009)."""
    from sqlalchemy import Index

    from models.call import Call
    from models.conversation import Conversation

    Index("ix_conversations_customer_id", Conversation.customer_id, Conversation.id)
    Index("ix_conversations_agent_status", Conversation.agent_id, Conversation.status)
    Index("ix_calls_account_id", Call.account_number, Call.id)


_indexes()
