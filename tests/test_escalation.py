"""Escalation (督办): due steps are recorded once, survive a restart, and reach the right people."""
from __future__ import annotations

import asyncio

from sqlalchemy import select

from hotline.actors import SERVICE
from hotline.context import build_context
from hotline.tickets import lifecycle
from hotline.tickets.escalation import run_scheduler, sweep
from hotline.tickets.lifecycle import TicketDraft
from models import Notification, Ticket, TicketEvent
from tests.conftest import local


async def _leak(ctx) -> str:
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.create_ticket(session, ctx.router, TicketDraft(
            category="repair", business_type="leak", description="小区门口管道漏水", channel="phone"),
            SERVICE, ctx.clock())
        return ticket.number


async def _escalations(ctx, number: str) -> list[tuple[str, list[int]]]:
    async with ctx.readers() as session:
        events = (await session.execute(select(TicketEvent).join(Ticket).where(
            Ticket.number == number, TicketEvent.action == "escalate").order_by(TicketEvent.id))).scalars()
        return [(e.data["step"], e.data["notified"]) for e in events]


async def _notices(ctx, staff_id: int) -> list[str]:
    async with ctx.readers() as session:
        return list((await session.execute(select(Notification.kind).where(
            Notification.staff_id == staff_id).order_by(Notification.id))).scalars())


async def test_steps_fire_in_order_and_notify_the_right_people(ctx, staff, clock, config) -> None:
    number = await _leak(ctx)  # Thursday 24 September 09:00; respond by 13:00, resolve by Friday 09:00
    sup = staff["sun.repair"]

    assert await sweep(ctx.sessions, ctx.router, local(2026, 9, 24, 12, 59)) == 0
    # 13:00 is both the response limit and the crew's on-site limit (4 hours for a leak).
    assert await sweep(ctx.sessions, ctx.router, local(2026, 9, 24, 13, 1)) == 2
    assert await _escalations(ctx, number) == [("response_overdue", [sup.id]), ("on_site_overdue", [sup.id])]

    clock.now = local(2026, 9, 24, 14, 0)
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, number, sup)
        await lifecycle.transition(session, ctx.router, ticket, "assign", sup, clock(), assignee="crew")

    # Warning at 80% of the 24 hours: Friday 04:12.
    assert await sweep(ctx.sessions, ctx.router, local(2026, 9, 25, 4, 13)) == 1
    crew = staff["crew"]
    assert (await _escalations(ctx, number))[-1] == ("warning", [crew.id, sup.id])
    assert await _notices(ctx, crew.id) == ["warning"]


async def test_a_restart_neither_repeats_nor_loses_a_step(ctx, staff, config, clock) -> None:
    number = await _leak(ctx)
    await sweep(ctx.sessions, ctx.router, local(2026, 9, 24, 13, 30))
    assert [s for s, _ in await _escalations(ctx, number)] == ["response_overdue", "on_site_overdue"]
    await ctx.engine.dispose()

    # The service was down from Thursday afternoon to Saturday; a new process starts.
    restarted = build_context(config, clock)
    try:
        assert await sweep(restarted.sessions, restarted.router, local(2026, 9, 24, 13, 30)) == 0
        recorded = await sweep(restarted.sessions, restarted.router, local(2026, 9, 26, 10, 0))
        assert recorded == 3
        steps = await _escalations(restarted, number)
        assert [s for s, _ in steps] == ["response_overdue", "on_site_overdue", "warning", "overdue",
                                         "overdue_level2"]
        assert steps[-1][1] == [staff["qian.manager"].id]  # level 2 reaches the manager
        assert await sweep(restarted.sessions, restarted.router, local(2026, 9, 30, 10, 0)) == 0
        async with restarted.readers() as session:
            ticket = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one()
        assert ticket.escalation_level == 5 and ticket.next_escalation_at is None
    finally:
        await restarted.engine.dispose()


async def test_response_and_on_site_steps_are_skipped_once_the_crew_is_dispatched_and_on_site(
        ctx, staff, clock) -> None:
    number = await _leak(ctx)
    clock.advance(hours=1)
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, number, staff["admin"])
        await lifecycle.transition(session, ctx.router, ticket, "assign", staff["admin"], clock(), assignee="crew")
    clock.advance(hours=1)
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, number, staff["crew"])
        await lifecycle.transition(session, ctx.router, ticket, "arrive", staff["crew"], clock())
        assert ticket.status == "in_progress" and ticket.arrived_at == clock()
    assert await sweep(ctx.sessions, ctx.router, local(2026, 9, 24, 14, 0)) == 0
    assert await _escalations(ctx, number) == []


async def test_a_crew_not_on_site_in_time_is_chased(ctx, staff, clock) -> None:
    number = await _leak(ctx)
    clock.advance(hours=1)
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, number, staff["admin"])
        await lifecycle.transition(session, ctx.router, ticket, "assign", staff["admin"], clock(), assignee="crew")
        assert ticket.on_site_due_at == local(2026, 9, 24, 13, 0)
    assert await sweep(ctx.sessions, ctx.router, local(2026, 9, 24, 13, 5)) == 1
    assert await _escalations(ctx, number) == [("on_site_overdue", [staff["sun.repair"].id, staff["crew"].id])]


async def test_resolved_work_is_not_chased(ctx, staff, clock) -> None:
    number = await _leak(ctx)
    admin = staff["admin"]
    for action, kwargs in [("assign", {"assignee": "crew"}), ("start", {}), ("resolve", {"note": "已修复"})]:
        async with ctx.sessions.begin() as session:
            ticket = await lifecycle.get_ticket(session, number, admin)
            await lifecycle.transition(session, ctx.router, ticket, action, admin, clock(), **kwargs)
    assert await sweep(ctx.sessions, ctx.router, local(2026, 10, 9, 9, 0)) == 0


async def test_the_scheduler_task_sweeps_on_its_own(ctx, staff, clock) -> None:
    number = await _leak(ctx)
    clock.now = local(2026, 9, 25, 12, 0)
    task = asyncio.create_task(run_scheduler(ctx.sessions, ctx.router, 0.05, clock))
    try:
        for _ in range(100):
            if len(await _escalations(ctx, number)) == 4:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert [s for s, _ in await _escalations(ctx, number)] == ["response_overdue", "on_site_overdue", "warning",
                                                               "overdue"]
