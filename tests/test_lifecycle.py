"""Every lifecycle transition, every refused one, and the audit trail they leave."""
from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from hotline.actors import SERVICE, SYSTEM
from hotline.context import AppContext
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import TRANSITIONS, Forbidden, InvalidTransition, TicketDraft, TicketError
from models import Customer, CustomerPhone, Ticket, TicketEvent
from tests.conftest import local


async def _customer(ctx: AppContext, account: str = "3100000001", phone: str = "13800000001") -> None:
    async with ctx.sessions.begin() as session:
        session.add(Customer(account_number=account, name="张伟", address="定州市中山东路1号", area="城东片区",
                             meter_model="LXS-15E", meter_size_dn=15, meter_serial="M1",
                             phones=[CustomerPhone(phone=phone)]))


async def _create(ctx: AppContext, **kw) -> str:
    fields = {"category": "repair", "description": "楼道里水管漏水", "channel": "wechat"} | kw
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.create_ticket(session, ctx.router, TicketDraft(**fields), SERVICE, ctx.clock())
        return ticket.number


async def _act(ctx: AppContext, number: str, action: str, actor, **kw) -> Ticket:
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, number, actor)
        return await lifecycle.transition(session, ctx.router, ticket, action, actor, ctx.clock(), **kw)


async def _events(ctx: AppContext, number: str) -> list[TicketEvent]:
    async with ctx.sessions() as session:
        return list((await session.execute(
            select(TicketEvent).join(Ticket).where(Ticket.number == number).order_by(TicketEvent.id))).scalars())


async def test_create_routes_links_the_account_and_numbers_by_local_day(ctx, staff) -> None:
    await _customer(ctx)
    number = await _create(ctx, account_number="3100000001", business_type="burst_main")
    assert number == "GD20260924-0001"
    async with ctx.sessions() as session:
        ticket = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one()
    assert ticket.priority == "urgent"
    assert ticket.address == "定州市中山东路1号"  # taken from the account
    assert ticket.contact_name == "张伟"
    assert ticket.supervisor_id == staff["sun.repair"].id
    assert ticket.response_due_at == ctx.clock() + dt.timedelta(minutes=30)
    assert [e.action for e in await _events(ctx, number)] == ["create"]


async def test_a_known_phone_number_links_the_customer(ctx, staff) -> None:
    await _customer(ctx, phone="13800000009")
    number = await _create(ctx, phone="138 0000 0009")
    async with ctx.sessions() as session:
        ticket = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one()
    assert ticket.account_number == "3100000001"
    assert ticket.contact_phone == "13800000009"


async def test_the_full_lifecycle_leaves_one_event_per_step(ctx, staff, clock) -> None:
    number = await _create(ctx, business_type="leak")
    sup, crew, agent = staff["sun.repair"], staff["crew"], staff["agent1"]
    await _act(ctx, number, "assign", sup, assignee="crew")
    clock.advance(minutes=10)
    await _act(ctx, number, "start", crew)
    clock.advance(hours=2)
    resolved = await _act(ctx, number, "resolve", crew, note="更换了漏水的三通")
    # The next working day: 25-27 September is the Mid-Autumn holiday.
    assert resolved.callback_due_at == local(2026, 9, 28, 17, 30)
    await _act(ctx, number, "callback", agent, reached=True, satisfaction=5, note="居民表示满意")
    closed = await _act(ctx, number, "close", agent)
    assert closed.status == "closed" and closed.satisfaction == 5 and closed.next_escalation_at is None
    events = await _events(ctx, number)
    assert [(e.action, e.from_status, e.to_status) for e in events] == [
        ("create", None, "new"), ("assign", "new", "assigned"), ("start", "assigned", "in_progress"),
        ("resolve", "in_progress", "resolved"), ("callback", "resolved", "callback"),
        ("close", "callback", "closed")]
    assert events[3].note == "更换了漏水的三通" and events[3].actor_name == "crew"


async def test_reopen_after_an_unsatisfied_callback_restarts_the_clock(ctx, staff, clock) -> None:
    number = await _create(ctx, business_type="low_pressure")
    sup, crew, agent = staff["sun.repair"], staff["crew"], staff["agent1"]
    await _act(ctx, number, "assign", sup, assignee="crew")
    await _act(ctx, number, "start", crew)
    await _act(ctx, number, "resolve", crew, note="调整了减压阀")
    await _act(ctx, number, "callback", agent, reached=True, satisfaction=1, note="水压还是低")
    clock.advance(days=2)
    ticket = await _act(ctx, number, "reopen", agent, note="居民反映问题仍在")
    assert ticket.status == "assigned"  # back to the same crew
    assert ticket.reopen_count == 1
    assert ticket.resolution_due_at == clock() + dt.timedelta(hours=24)
    assert ticket.next_escalation_at is not None and ticket.next_escalation_at > clock()


async def test_reroute_moves_department_and_recomputes_due_times(ctx, staff) -> None:
    number = await _create(ctx, business_type="leak")
    ticket = await _act(ctx, number, "reroute", staff["agent1"], business_type="meter_fault", note="实为水表问题")
    async with ctx.sessions() as session:
        dept = await session.get(__import__("models").Department, ticket.department_id)
    assert dept.code == "meter"
    assert ticket.status == "new" and ticket.assignee_id is None
    assert ticket.resolution_due_at == ticket.clock_started_at + dt.timedelta(hours=24)
    changed = await _act(ctx, number, "reroute", staff["agent1"], category="complaint")
    assert changed.business_type == "complaint_service" and changed.category == "complaint"


# Every (status, action) pair that the lifecycle does not allow is refused.
STATUS_PATH = {
    "new": [],
    "assigned": [("assign", {"assignee": "crew"})],
    "in_progress": [("assign", {"assignee": "crew"}), ("start", {})],
    "resolved": [("assign", {"assignee": "crew"}), ("start", {}), ("resolve", {"note": "修好了"})],
    "callback": [("assign", {"assignee": "crew"}), ("start", {}), ("resolve", {"note": "修好了"}),
                 ("callback", {"reached": True, "satisfaction": 4})],
    "closed": [("assign", {"assignee": "crew"}), ("start", {}), ("resolve", {"note": "修好了"}),
               ("callback", {"reached": True, "satisfaction": 4}), ("close", {})],
}
REFUSED = [(status, action) for status in STATUS_PATH for action, spec in TRANSITIONS.items()
           if status not in spec.sources]


@pytest.mark.parametrize(("status", "action"), REFUSED)
async def test_transitions_not_in_the_lifecycle_are_refused(ctx, staff, status, action) -> None:
    number = await _create(ctx)
    for step, kwargs in STATUS_PATH[status]:
        await _act(ctx, number, step, staff["admin"], **kwargs)
    before = len(await _events(ctx, number))
    with pytest.raises(InvalidTransition, match=f"is {status}"):
        await _act(ctx, number, action, staff["admin"], note="x", assignee="crew", reached=True,
                   satisfaction=3, category="complaint")
    assert len(await _events(ctx, number)) == before  # nothing written


@pytest.mark.parametrize(("action", "kwargs", "message"), [
    ("assign", {}, "needs an assignee"),
    ("assign", {"assignee": "nobody"}, "no active staff member"),
    ("comment", {"note": "  "}, "needs text"),
    ("reroute", {}, "needs a new category"),
    ("frobnicate", {}, "unknown action"),
])
async def test_incomplete_requests_are_refused(ctx, staff, action, kwargs, message) -> None:
    number = await _create(ctx)
    with pytest.raises(TicketError, match=message):
        await _act(ctx, number, action, staff["admin"], **kwargs)


async def test_resolve_and_callback_need_their_details(ctx, staff) -> None:
    number = await _create(ctx)
    await _act(ctx, number, "assign", staff["admin"], assignee="crew")
    await _act(ctx, number, "start", staff["crew"])
    with pytest.raises(TicketError, match="needs a note"):
        await _act(ctx, number, "resolve", staff["crew"])
    await _act(ctx, number, "resolve", staff["crew"], note="ok")
    with pytest.raises(TicketError, match="reached"):
        await _act(ctx, number, "callback", staff["agent1"])
    with pytest.raises(TicketError, match="satisfaction"):
        await _act(ctx, number, "callback", staff["agent1"], reached=True)
    not_reached = await _act(ctx, number, "callback", staff["agent1"], reached=False)
    assert not_reached.callback_result == "未联系上"


async def test_roles_and_departments_limit_who_may_act(ctx, staff) -> None:
    number = await _create(ctx, category="billing")  # the billing department's ticket
    with pytest.raises(lifecycle.NotFound):
        await _act(ctx, number, "comment", staff["crew"], note="not mine")  # another department's
    with pytest.raises(Forbidden):
        await _act(ctx, number, "start", staff["agent1"])  # agents don't do field work
    with pytest.raises(Forbidden):
        await _act(ctx, number, "assign", SERVICE, assignee="crew")  # the bot may not dispatch
    async with ctx.sessions.begin() as session:
        with pytest.raises(Forbidden):
            await lifecycle.create_ticket(session, ctx.router, TicketDraft(
                category="repair", description="x", channel="web"), staff["crew"], ctx.clock())


@pytest.mark.parametrize(("fields", "message"), [
    ({"description": "   "}, "description must not be empty"),
    ({"channel": "fax"}, "unknown channel"),
    ({"account_number": "999"}, "unknown account number"),
    ({"phone": "call me maybe"}, "not a telephone number"),
    ({"category": "weather"}, "unknown category"),
])
async def test_bad_drafts_write_nothing(ctx, staff, fields, message) -> None:
    with pytest.raises(TicketError, match=message):
        await _create(ctx, **fields)
    async with ctx.sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Ticket))).scalar_one() == 0


async def test_concurrent_creates_get_unique_consecutive_numbers(ctx, staff) -> None:
    numbers = await asyncio.gather(*[_create(ctx) for _ in range(30)])
    assert sorted(numbers) == [f"GD20260924-{i:04d}" for i in range(1, 31)]


async def test_the_system_actor_may_do_anything_the_scheduler_needs(ctx, staff) -> None:
    number = await _create(ctx)
    ticket = await _act(ctx, number, "comment", SYSTEM, note="自动备注")
    assert ticket.status == "new"
