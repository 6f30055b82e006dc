"""Departments ask for more time (延期) and send back work that is not theirs (退单); crews arrive on site."""
from __future__ import annotations

from sqlalchemy import select

from hotline.conversations import service
from models import Conversation, Message, Notification, Ticket
from tests.conftest import SERVICE, eventually, local, login


async def _leak(client, ctx) -> tuple[str, int]:
    received = await service.receive(ctx, "web", "resident-extension", "楼道漏水", to_bot=False)
    resp = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "leak", "description": "楼道漏水", "channel": "web",
        "conversation_id": received.conversation_id})
    return (await resp.json())["number"], received.conversation_id


async def _post(client, number: str, action: str, user: str, **body):  # type: ignore[no-untyped-def]
    headers = await login(client, user)
    return await client.post(f"/api/tickets/{number}/{action}", json=body, headers=headers)


async def test_an_extension_is_asked_by_the_crew_and_decided_by_the_tickets_supervisor(client, ctx, staff) -> None:
    number, conv_id = await _leak(client, ctx)
    assert (await _post(client, number, "assign", "sun.repair", assignee="crew")).status == 200
    ticket = await (await client.get(f"/api/tickets/{number}", headers=SERVICE)).json()
    due = ticket["resolution_due_at"]
    new_due = local(2026, 9, 28, 17, 30).isoformat()

    missing = await _post(client, number, "request_extension", "crew", due_at=new_due)
    assert missing.status == 422  # a reason is needed
    asked = await _post(client, number, "request_extension", "crew", note="需要协调物业停水施工", due_at=new_due)
    assert asked.status == 200, await asked.text()
    data = await asked.json()
    assert data["extension"]["reason"] == "需要协调物业停水施工" and data["resolution_due_at"] == due
    assert "request_extension" not in data["allowed_actions"]  # one pending request at a time
    twice = await _post(client, number, "request_extension", "crew", note="再延", due_at=new_due)
    assert twice.status == 409
    async with ctx.readers() as session:
        kinds = (await session.execute(select(Notification.kind).where(
            Notification.staff_id == staff["sun.repair"].id))).scalars().all()
    assert "extension_request" in kinds  # the supervisor hears of it

    assert (await _post(client, number, "approve_extension", "zhao.supervisor")).status == 403  # not theirs
    approved = await _post(client, number, "approve_extension", "sun.repair")
    assert approved.status == 200
    data = await approved.json()
    assert data["resolution_due_at"] == new_due and data["extension"] is None
    async def told() -> list[str]:
        async with ctx.readers() as session:
            texts = (await session.execute(select(Message.text).where(Message.conversation_id == conv_id)))
            return [t for t in texts.scalars() if "延长至9月28日17:30" in t]

    assert await eventually(told)  # the resident hears the new date
    async with ctx.readers() as session:
        ticket_row = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one()
    assert ticket_row.next_escalation_at == local(2026, 9, 24, 13, 0)  # the crew's arrival is still chased
    await _post(client, number, "arrive", "crew")
    from hotline.tickets.escalation import sweep
    assert await sweep(ctx.sessions, ctx.router, local(2026, 9, 24, 13, 5)) == 0  # arrived: not chased
    async with ctx.readers() as session:
        ticket_row = (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one()
    start = ticket_row.clock_started_at
    # then the warning, re-armed at 80 % of the new limit
    assert ticket_row.next_escalation_at == start + (local(2026, 9, 28, 17, 30) - start) * 0.8
    events = [e["action"] for e in data["events"]]
    assert events[-2:] == ["request_extension", "approve_extension"]


async def test_a_rejected_extension_moves_nothing(client, ctx, staff) -> None:
    number, _ = await _leak(client, ctx)
    await _post(client, number, "assign", "sun.repair", assignee="crew")
    before = (await (await client.get(f"/api/tickets/{number}", headers=SERVICE)).json())["resolution_due_at"]
    later = local(2026, 10, 9, 17, 0).isoformat()
    await _post(client, number, "request_extension", "crew", note="材料未到", due_at=later)
    rejected = await _post(client, number, "reject_extension", "sun.repair", note="请先临时止水")
    data = await rejected.json()
    assert rejected.status == 200 and data["resolution_due_at"] == before and data["extension"] is None
    async with ctx.readers() as session:
        kinds = (await session.execute(select(Notification.kind).where(
            Notification.staff_id == staff["crew"].id))).scalars().all()
    assert "extension_rejected" in kinds


async def test_a_returned_ticket_goes_back_to_the_customer_service_centre_with_its_clock(client, ctx, staff) -> None:
    number, _ = await _leak(client, ctx)
    await _post(client, number, "assign", "sun.repair", assignee="crew")
    before = await (await client.get(f"/api/tickets/{number}", headers=SERVICE)).json()
    assert (await _post(client, number, "return", "crew")).status == 422  # a reason is needed
    returned = await _post(client, number, "return", "crew", note="属于小区物业自管管道")
    data = await returned.json()
    assert returned.status == 200
    assert (data["department"], data["status"], data["assignee"]) == ("customer_service", "new", None)
    assert data["resolution_due_at"] == before["resolution_due_at"]  # the resident's clock keeps running
    await login(client, "crew")
    assert (await client.get(f"/api/tickets/{number}")).status == 404  # gone from the crew's list
    await login(client, "agent1")
    listed = await (await client.get("/api/tickets", params={"department": "customer_service"})).json()
    assert number in [t["number"] for t in listed["items"]]
    assert "reroute" in (await (await client.get(f"/api/tickets/{number}")).json())["allowed_actions"]


async def test_the_crew_records_its_arrival_on_site(client, ctx, staff, clock) -> None:
    number, _ = await _leak(client, ctx)
    await _post(client, number, "assign", "sun.repair", assignee="crew")
    ticket = await (await client.get(f"/api/tickets/{number}", headers=SERVICE)).json()
    assert ticket["on_site_due_at"] == local(2026, 9, 24, 13, 0).isoformat()  # 4 hours for a leak
    clock.advance(hours=2)
    arrived = await _post(client, number, "arrive", "crew")
    data = await arrived.json()
    assert arrived.status == 200 and data["arrived_at"] == clock().isoformat() and data["status"] == "in_progress"
    assert "arrive" not in data["allowed_actions"]
    assert data["events"][-1]["data"]["on_time"] is True
    async with ctx.readers() as session:
        conv_count = len((await session.execute(select(Conversation))).scalars().all())
    assert conv_count == 1
