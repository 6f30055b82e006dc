"""Incidents (事件): many residents reporting one cause, the outages published for them, what residents
are told, and the public-opinion alerts (舆情预警) that need a supervisor's eye."""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow

INCIDENT_STATUSES = ("suspected", "active", "dismissed", "ended")


class OutageArea(Base):
    """One area an outage covers: an outage may cover several."""

    __tablename__ = "outage_areas"
    __table_args__ = (UniqueConstraint("outage_id", "area"), Index("ix_outage_areas_area", "area"))

    id: Mapped[int] = mapped_column(primary_key=True)
    outage_id: Mapped[int] = mapped_column(ForeignKey("outages.id", ondelete="CASCADE"), index=True)
    area: Mapped[str] = mapped_column(String(64))


class Incident(Base):
    """Reports that point to one cause: suspected when they cluster, active once a supervisor confirms
    (with an unplanned outage), dismissed, or ended (its reports resolved together)."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_area_kind_status", "area", "kind", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    status: Mapped[str] = mapped_column(String(12), default="suspected")
    area: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))  # the detection rule's name (config/incidents.yml)
    business_type: Mapped[str] = mapped_column(String(40))  # of the first report
    outage_id: Mapped[int | None] = mapped_column(ForeignKey("outages.id"))
    expected_restore_at: Mapped[dt.datetime | None]
    title: Mapped[str] = mapped_column(String(200), default="")
    text: Mapped[str] = mapped_column(Text, default="")  # what residents are told
    resolution: Mapped[str] = mapped_column(Text, default="")
    detected_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str] = mapped_column(String(100), default="")
    ended_at: Mapped[dt.datetime | None]


class IncidentReport(Base):
    """A ticket linked to an incident; a ticket belongs to at most one."""

    __tablename__ = "incident_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id", ondelete="CASCADE"), index=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    linked_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class IncidentEvent(Base):
    """Append-only audit trail of outages, incidents and alerts: one row per change, with its actor."""

    __tablename__ = "incident_events"
    __table_args__ = (Index("ix_incident_events_subject", "subject", "subject_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(12))  # outage, incident, alert, binding
    subject_id: Mapped[int]
    action: Mapped[str] = mapped_column(String(30))
    actor_kind: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id"))
    actor_name: Mapped[str] = mapped_column(String(100), default="")
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class OpinionAlert(Base):
    """A message that signals media or outside escalation (舆情预警), until a supervisor acknowledges it."""

    __tablename__ = "opinion_alerts"
    __table_args__ = (Index("ix_opinion_alerts_open", "acknowledged_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id"))
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id"))
    words: Mapped[list[Any]] = mapped_column(default=list)
    excerpt: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[dt.datetime | None]
    acknowledged_by: Mapped[str] = mapped_column(String(100), default="")


class WechatBinding(Base):
    """A WeChat user proven to own an account (绑定户号): balance without typing it, outage notices."""

    __tablename__ = "wechat_bindings"
    __table_args__ = (UniqueConstraint("openid", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    openid: Mapped[str] = mapped_column(String(128), index=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    bound_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
