"""Look up accounts and derive balance and arrears from bills and payments."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from models import Bill, Customer, CustomerPhone, Outage, OutageArea, Payment


@dataclass(frozen=True)
class Statement:
    """Money in fen. Arrears (欠费) are unpaid amounts past their due date;
    outstanding are unpaid but not yet due; balance (余额) is prepaid credit."""

    balance_fen: int
    arrears_fen: int
    outstanding_fen: int
    overdue_bills: int
    bills: list[Bill]


async def get_customer(session: AsyncSession, account_number: str) -> Customer | None:
    return (await session.execute(select(Customer).options(selectinload(Customer.phones))
                                  .where(Customer.account_number == account_number))).scalar_one_or_none()


async def search_customers(session: AsyncSession, *, text: str | None = None, phone: str | None = None,
                           limit: int = 20) -> list[Customer]:
    stmt = select(Customer).options(selectinload(Customer.phones)).order_by(Customer.account_number).limit(limit)
    if phone:
        stmt = stmt.where(Customer.id.in_(select(CustomerPhone.customer_id).where(CustomerPhone.phone == phone)))
    if text:
        # % and _ are the resident's characters, not wildcards.
        stmt = stmt.where(or_(Customer.account_number == text, Customer.name.contains(text, autoescape=True),
                               Customer.address.contains(text, autoescape=True)))
    return list((await session.execute(stmt)).scalars().all())


async def statement(session: AsyncSession, customer: Customer, today: dt.date, last: int = 6) -> Statement:
    bills = list((await session.execute(
        select(Bill).where(Bill.customer_id == customer.id).order_by(Bill.period.desc()))).scalars().all())
    paid_total = (await session.execute(
        select(func.coalesce(func.sum(Payment.amount_fen), 0)).where(Payment.customer_id == customer.id)
    )).scalar_one()
    allocated = sum(b.paid_fen for b in bills)
    arrears = sum(b.outstanding_fen for b in bills if b.due_on < today)
    outstanding = sum(b.outstanding_fen for b in bills if b.due_on >= today)
    return Statement(balance_fen=max(paid_total - allocated, 0), arrears_fen=arrears,
                     outstanding_fen=outstanding,
                     overdue_bills=sum(1 for b in bills if b.due_on < today and b.outstanding_fen),
                     bills=bills[:last])


async def current_outages(session: AsyncSession, now: dt.datetime, area: str | None = None) -> list[Outage]:
    """Outages not yet over, in an area or everywhere, soonest first."""
    stmt = select(Outage).where(Outage.ends_at > now, Outage.ended_at.is_(None)).order_by(Outage.starts_at)
    if area:
        covered = select(OutageArea.id).where(OutageArea.outage_id == Outage.id, OutageArea.area == area).exists()
        stmt = stmt.where(or_(Outage.area == area, covered))
    return list((await session.execute(stmt)).scalars().all())
