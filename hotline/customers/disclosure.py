"""What a resident is told about an account they name: everything for its proven owner, at most the masked
name and the amount due for anyone else ([privacy] anonymous_disclosure), and a polite refusal for an
unverified resident who has already asked about too many accounts this hour.

The one door for the web chat and WeChat (through the bot's /api/residents) and for the IVR: each asks here,
so the rule and the throttle are the same wherever a resident asks.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.context import AppContext
from hotline.customers import accounts, lookups, verification
from hotline.customers.verification import Resident
from hotline.errors import Refused
from hotline.incidents.bindings import masked
from hotline.tickets.lifecycle import STATUS_LABELS
from models import Customer, Department, Ticket
from models.ticket import OPEN_STATUSES

FULL, AMOUNT_DUE, NONE = "full", "amount_due", "none"


class TooManyLookups(Refused):
    def __init__(self, message: str) -> None:
        super().__init__(429, "too_many_lookups", message)


class UnknownAccount(Refused):
    def __init__(self, account_number: str) -> None:
        super().__init__(404, "unknown_account", "没有找到这个户号")


@dataclass(frozen=True)
class Disclosure:
    level: str  # full, amount_due, none
    customer: Customer
    statement: accounts.Statement
    verified_by: str | None

    @property
    def amount_due_fen(self) -> int:
        return self.statement.arrears_fen + self.statement.outstanding_fen


def refused(ctx: AppContext, channel: str, reason: str) -> None:
    """Counted on /metrics (hotline_resident_refusals_total by channel and reason); nothing personal in it."""
    ctx.bus.publish({"type": "resident.refused", "channel": channel, "reason": reason})


async def admit_lookup(ctx: AppContext, session: AsyncSession, resident: Resident, account_number: str) -> None:
    """Count an unverified resident's look-up, or refuse it (429) beyond the hour's limit."""
    if not await lookups.admit(session, ctx.config.privacy, resident, account_number, ctx.clock()):
        refused(ctx, resident.channel, "lookups")
        raise TooManyLookups(ctx.messages("residents.too_many_lookups"))


async def _customer(session: AsyncSession, account_number: str) -> Customer | None:
    return (await session.execute(select(Customer).where(
        Customer.account_number == account_number))).scalar_one_or_none()


async def disclose(ctx: AppContext, session: AsyncSession, resident: Resident,
                   account_number: str) -> Disclosure | None:
    """What this resident may be told about the account, None for no such account (commit the session either
    way: the look-up is recorded).

    A verified resident's look-ups are not counted; an unknown account counts like any other, so that trying
    numbers is throttled whether or not they exist.
    """
    customer = await _customer(session, account_number)
    method = await verification.verified_by(session, resident, customer) if customer else None
    if method is None:
        await admit_lookup(ctx, session, resident, account_number)
    if customer is None:
        return None
    statement = await accounts.statement(session, customer, ctx.today())
    level = FULL if method else (AMOUNT_DUE if ctx.config.privacy.anonymous_disclosure == AMOUNT_DUE else NONE)
    return Disclosure(level, customer, statement, method)


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


def disclosure_json(d: Disclosure) -> dict[str, Any]:
    """The answer to a resident: nothing beyond what their level allows is even in it."""
    st = d.statement
    data: dict[str, Any] = {"account_number": d.customer.account_number, "disclosure": d.level,
                            "verified": d.level == FULL, "verified_by": d.verified_by}
    if d.level == NONE:
        return data
    data |= {"name": masked(d.customer.name), "amount_due": yuan(d.amount_due_fen), "amount_due_fen": d.amount_due_fen}
    if d.level != FULL:
        return data
    return data | {
        "balance": yuan(st.balance_fen), "arrears": yuan(st.arrears_fen), "outstanding": yuan(st.outstanding_fen),
        "overdue_bills": st.overdue_bills, "balance_fen": st.balance_fen, "arrears_fen": st.arrears_fen,
        "outstanding_fen": st.outstanding_fen,
        "bills": [{"period": b.period, "volume_m3": b.volume_m3, "amount": yuan(b.amount_fen),
                   "late_fee": yuan(b.late_fee_fen), "paid": yuan(b.paid_fen),
                   "reading_previous": b.reading_previous, "reading_current": b.reading_current,
                   "due_on": b.due_on.isoformat(), "outstanding": yuan(b.outstanding_fen)} for b in st.bills],
    }


async def tickets_json(ctx: AppContext, session: AsyncSession, customer: Customer,
                       limit: int = 3) -> list[dict[str, Any]]:
    """The account's latest tickets as the owner hears them: what, where it stands, who, by when."""
    found = list((await session.execute(select(Ticket).where(Ticket.account_number == customer.account_number)
                                        .order_by(Ticket.id.desc()).limit(limit))).scalars())
    depts = {d.id: d.name for d in (await session.execute(select(Department))).scalars()}
    now = ctx.clock()
    out = []
    for t in found:
        bt = ctx.router.spec.business_types.get(t.business_type)
        out.append({"number": t.number, "business_type_name": bt.name if bt else t.business_type,
                    "status": t.status, "status_label": STATUS_LABELS[t.status],
                    "department_name": depts.get(t.department_id), "resolution_due_at": _iso(t.resolution_due_at),
                    "resolved_at": _iso(t.resolved_at),
                    "overdue": t.status in OPEN_STATUSES and t.resolution_due_at < now})
    return out


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None
