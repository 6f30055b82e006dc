"""Human-readable ticket numbers: GD + local date + a per-day sequence."""
from __future__ import annotations

import datetime as dt

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from models import TicketCounter

PREFIX = "GD"


async def next_ticket_number(session: AsyncSession, local_day: dt.date) -> str:
    """Allocate the next number of the day inside the caller's transaction.

    One upsert: concurrent creators serialize on the counter row, so numbers
    are unique and a rolled-back ticket gives its number back.
    """
    day = local_day.strftime("%Y%m%d")
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (insert(TicketCounter).values(day=day, last=1)
            .on_conflict_do_update(index_elements=[TicketCounter.day],
                                   set_={"last": TicketCounter.last + 1})
            .returning(TicketCounter.last))
    seq = (await session.execute(stmt)).scalar_one()
    return f"{PREFIX}{day}-{seq:04d}"
