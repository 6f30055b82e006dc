"""The escalation scheduler (督办): a task in the service that records due steps.

Each sweep takes the tickets whose next step has come (an index range scan on
next_escalation_at), applies the steps through the lifecycle's one door and
commits. With several processes on PostgreSQL, rows are claimed with
SKIP LOCKED so no two processes escalate the same ticket.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.tickets.lifecycle import escalate_due_steps
from hotline.tickets.routing import Router
from models import Ticket
from models.base import utcnow

if TYPE_CHECKING:
    from hotline.health import JobRuns

log = logging.getLogger(__name__)


async def sweep(sessions: async_sessionmaker[AsyncSession], router: Router, now: dt.datetime,
                batch: int = 200) -> int:
    """Apply every due escalation step; returns the number of steps recorded."""
    total = 0
    while True:
        async with sessions.begin() as session:
            stmt = (select(Ticket).where(Ticket.next_escalation_at <= now)
                    .order_by(Ticket.next_escalation_at).limit(batch))
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            tickets = (await session.execute(stmt)).scalars().all()
            for ticket in tickets:
                total += await escalate_due_steps(session, router, ticket, now)
        if len(tickets) < batch:
            return total


async def run_scheduler(sessions: async_sessionmaker[AsyncSession], router: Router, interval: float,
                        clock: Callable[[], dt.datetime] = utcnow, runs: JobRuns | None = None) -> None:
    """Sweep forever; a failed sweep is logged and retried on the next tick (and counted in `runs`:
    sweeps that keep failing show the scheduler as down)."""
    if runs is None:
        from hotline.health import JobRuns
        runs = JobRuns("escalation", log=log)
    while True:
        with runs.attempt():
            recorded = await sweep(sessions, router, clock())
            if recorded:
                log.info("escalation sweep recorded %d step(s)", recorded)
        await asyncio.sleep(interval)
