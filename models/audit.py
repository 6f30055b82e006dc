"""The read audit (查阅记录): who looked at which resident's data, when, and where.

One row per resident per read. Rows are only ever added: no foreign keys, so a staff member or a
conversation that goes away leaves the evidence of who read what untouched.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class ReadAudit(Base):
    __tablename__ = "read_audit"
    __table_args__ = (
        Index("ix_read_audit_account_at", "account_number", "at"),
        Index("ix_read_audit_phone_at", "phone", "at"),
        Index("ix_read_audit_staff_at", "staff_id", "at"),
        Index("ix_read_audit_at", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    staff_id: Mapped[int | None]  # None for the service token (the bot) and the system
    staff_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(20))  # agent, supervisor, department, admin, service, system
    endpoint: Mapped[str] = mapped_column(String(120))  # method and route pattern, e.g. GET /api/customers
    account_number: Mapped[str | None] = mapped_column(String(32))
    phone: Mapped[str | None] = mapped_column(String(32))  # normalised, as customer_phones stores it
    openid: Mapped[str | None] = mapped_column(String(128))
    conversation_id: Mapped[int | None]
    call_id: Mapped[int | None]
    ticket_number: Mapped[str | None] = mapped_column(String(32))
    hits: Mapped[int] = mapped_column(default=1)  # items about this resident in the answer (a search, a list)
    reason: Mapped[str] = mapped_column(String(200), default="")  # why, when the reader had to say (显示全名)
