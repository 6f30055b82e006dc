"""Conversations (会话) on every text channel, their messages and their audit trail."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

CONVERSATION_STATUSES = ("bot", "waiting", "agent", "closed")


class Conversation(Base):
    """One resident's exchange on one channel; `status` decides who answers."""

    __tablename__ = "conversations"
    __table_args__ = (Index("ix_conversations_channel_user", "channel", "external_user", "status"),
                      Index("ix_conversations_status_waiting", "status", "waiting_since"))

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(10))
    external_user: Mapped[str] = mapped_column(String(128))  # WeChat openid, web client id
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[str] = mapped_column(String(10), default="bot")
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    bot_intent: Mapped[str | None] = mapped_column(String(40))
    slots: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    waiting_since: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    # Set on close: the resident's next message of 1-5 is taken as the rating (满意度).
    rating_requested_at: Mapped[dt.datetime | None]
    satisfaction: Mapped[int | None]
    handoff_reason: Mapped[str | None] = mapped_column(String(30))


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (UniqueConstraint("channel", "channel_message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(10))
    # The channel's own id (WeChat MsgId), so a retried push is stored once.
    channel_message_id: Mapped[str | None] = mapped_column(String(128))
    direction: Mapped[str] = mapped_column(String(3))  # in, out
    sender_kind: Mapped[str] = mapped_column(String(10))  # resident, bot, agent, system
    sender_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    kind: Mapped[str] = mapped_column(String(10), default="text")  # text, image, voice, location, event
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    delivery_status: Mapped[str] = mapped_column(String(12), default="stored")
    delivery_error: Mapped[str | None] = mapped_column(Text)


class ConversationEvent(Base):
    """Append-only audit trail of a conversation: one row per change, with who made it."""

    __tablename__ = "conversation_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(30))
    actor_kind: Mapped[str] = mapped_column(String(20))  # resident, bot, staff, service, system
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    actor_name: Mapped[str] = mapped_column(String(100), default="")
    from_status: Mapped[str | None] = mapped_column(String(10))
    to_status: Mapped[str | None] = mapped_column(String(10))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
