"""Customer archive (用户档案), bills and payments, and planned outages."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow


class Customer(Base):
    """One water account (户号) with its meter."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    address: Mapped[str] = mapped_column(String(255))
    area: Mapped[str] = mapped_column(String(64), index=True)
    meter_model: Mapped[str] = mapped_column(String(64))
    meter_size_dn: Mapped[int]
    meter_serial: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="active")
    opened_on: Mapped[dt.date | None] = mapped_column(Date)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    phones: Mapped[list[CustomerPhone]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", lazy="raise")


class CustomerPhone(Base):
    __tablename__ = "customer_phones"
    __table_args__ = (UniqueConstraint("customer_id", "phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(32), index=True)

    customer: Mapped[Customer] = relationship(back_populates="phones")


class Bill(Base):
    """One billing period; money is in fen (分) so nothing is lost to floats."""

    __tablename__ = "bills"
    __table_args__ = (UniqueConstraint("customer_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    reading_previous: Mapped[int]
    reading_current: Mapped[int]
    volume_m3: Mapped[int]
    amount_fen: Mapped[int]
    late_fee_fen: Mapped[int] = mapped_column(default=0)
    paid_fen: Mapped[int] = mapped_column(default=0)
    issued_on: Mapped[dt.date] = mapped_column(Date)
    due_on: Mapped[dt.date] = mapped_column(Date)

    @property
    def outstanding_fen(self) -> int:
        return max(self.amount_fen + self.late_fee_fen - self.paid_fen, 0)


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    bill_id: Mapped[int | None] = mapped_column(ForeignKey("bills.id", ondelete="SET NULL"))
    amount_fen: Mapped[int]
    paid_at: Mapped[dt.datetime]
    method: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(64), default="")


class Outage(Base):
    """A planned or emergency interruption of supply in an area (停水通知)."""

    __tablename__ = "outages"
    __table_args__ = (Index("ix_outages_area_ends", "area", "ends_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    area: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(Text, default="")
    planned: Mapped[bool] = mapped_column(default=True)
    starts_at: Mapped[dt.datetime]
    ends_at: Mapped[dt.datetime]
    # Published from the console: every area it covers is also in outage_areas (`area` is the first).
    ended_at: Mapped[dt.datetime | None]  # ended early (or on time) by a dispatcher
    published_by: Mapped[str] = mapped_column(String(100), default="")
