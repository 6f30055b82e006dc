"""What a whole shift in the console stands on: the resident's context, the conversation history and one
search box, whispers, reassigning, presence-based assignment, canned replies, a manual chase, the
supervisors' overview and the IVR's agents-on-duty check."""
from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from hotline.actors import SERVICE, SYSTEM
from hotline.channels.base import Delivery
from hotline.conversations import service
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import TicketDraft
from models import AgentPresence, Bill, Conversation, ConversationEvent, Customer, CustomerPhone, Message, Outage
from tests.conftest import login

ACCOUNT, PHONE = "3100000042", "13900001111"


class RecordingChannel:
    """The web chat, remembering what the resident was sent."""

    name = "web"

    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def deliver(self, conversation: Conversation, message: Message) -> Delivery:
        self.delivered.append(message.text)
        return Delivery("delivered")


@pytest.fixture
def channel(ctx) -> RecordingChannel:
    ctx.channels["web"] = RecordingChannel()
    return ctx.channels["web"]


async def _resident(ctx) -> None:
    """One account in 城东片区 with a phone, a bill past due (arrears 45.60) and an outage in its area."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        customer = Customer(account_number=ACCOUNT, name="王小明", address="定州市中山东路幸福小区3号楼",
                            area="城东片区", meter_model="LXS-20", meter_size_dn=20, meter_serial="M0042")
        session.add(customer)
        await session.flush()
        session.add(CustomerPhone(customer_id=customer.id, phone=PHONE))
        session.add(Bill(customer_id=customer.id, period="2026-07", reading_previous=100, reading_current=112,
                         volume_m3=12, amount_fen=4560, issued_on=dt.date(2026, 8, 1), due_on=dt.date(2026, 8, 31)))
        session.add(Outage(area="城东片区", title="中山东路主管道改造计划停水", planned=True,
                           starts_at=now + dt.timedelta(hours=2), ends_at=now + dt.timedelta(hours=10)))


async def _waiting(ctx, user: str, text: str, learned: dict[str, Any] | None = None) -> int:
    received = await service.receive(ctx, "web", user, text, to_bot=False)
    await service.handoff(ctx, received.conversation_id, "requested", None, category="repair", learned=learned)
    return received.conversation_id


async def _ticket(ctx, **kw: Any) -> str:
    async with ctx.sessions.begin() as session:
        draft = TicketDraft(category="repair", business_type="leak", description="楼道水管漏水", channel="web", **kw)
        ticket = await lifecycle.create_ticket(session, ctx.router, draft, SERVICE, ctx.clock())
        return ticket.number


async def test_the_context_panel_shows_the_residents_account_balance_tickets_and_outage(
        client: TestClient, ctx, channel) -> None:
    await _resident(ctx)
    conv = await _waiting(ctx, "resident-ctx-1", "我家漏水", learned={"account_number": ACCOUNT})
    number = await _ticket(ctx, account_number=ACCOUNT, phone=PHONE)
    await login(client, "agent1")
    data = await (await client.get(f"/api/conversations/{conv}/context")).json()
    assert data["matched_by"] == "confirmed"  # the bot's confirmed account set customer_id
    customer = data["customer"]
    assert (customer["account_number"], customer["name"], customer["area"]) == (ACCOUNT, "王**", "城东片区")
    assert customer["phones"] == [PHONE] and customer["meter"]["serial"] == "M0042"
    assert data["balance"]["arrears"] == "45.60"
    assert [t["number"] for t in data["open_tickets"]] == [number]
    assert [o["title"] for o in data["outages"]] == ["中山东路主管道改造计划停水"]
    # A caller known only by number gets the same panel.
    by_phone = await (await client.get(f"/api/residents/context?phone={PHONE}")).json()
    assert by_phone["customer"]["account_number"] == ACCOUNT
    assert [t["number"] for t in by_phone["open_tickets"]] == [number]
    await login(client, "crew")
    assert (await client.get(f"/api/conversations/{conv}/context")).status == 403


async def test_a_closed_conversation_is_found_by_account_the_next_day(client: TestClient, ctx, clock, staff,
                                                                     channel) -> None:
    await _resident(ctx)
    conv = await _waiting(ctx, "resident-hist-1", "水费怎么这么多", learned={"account_number": ACCOUNT})
    other = await _waiting(ctx, "resident-hist-2", "别的事")
    await service.take_over(ctx, conv, staff["agent1"])
    await service.close(ctx, conv, staff["agent1"])
    await service.receive(ctx, "web", "resident-hist-1", "4", to_bot=False)  # the rating
    clock.advance(days=1)
    await login(client, "agent1")
    found = await (await client.get(f"/api/conversations?q={ACCOUNT}")).json()
    assert [c["id"] for c in found["items"]] == [conv]
    assert found["items"][0]["agent_name"] == "agent1" and found["items"][0]["satisfaction"] == 4
    by_phone = await (await client.get(f"/api/conversations?q={PHONE}")).json()
    assert [c["id"] for c in by_phone["items"]] == [conv]  # the phone names the same account
    words = await (await client.get("/api/conversations?q=水费")).json()
    assert [c["id"] for c in words["items"]] == [conv]
    filtered = await (await client.get("/api/conversations?status=closed&agent=agent1&rating=4"
                                       "&since=2026-09-24&until=2026-09-24")).json()
    assert [c["id"] for c in filtered["items"]] == [conv]
    assert (await (await client.get("/api/conversations?since=2026-09-25")).json())["items"] == []
    unrated = await (await client.get("/api/conversations?rating=0")).json()
    assert [c["id"] for c in unrated["items"]] == [other]


async def test_one_search_box_finds_tickets_accounts_conversations_and_calls(client: TestClient, ctx,
                                                                          channel) -> None:
    await _resident(ctx)
    conv = await _waiting(ctx, "resident-s-1", "漏水", learned={"account_number": ACCOUNT})
    by_phone = await _ticket(ctx, phone=PHONE, address="建设路8号")
    by_account = await _ticket(ctx, account_number=ACCOUNT, conversation_id=conv)
    await login(client, "agent1")
    data = await (await client.get(f"/api/search?q={PHONE}")).json()
    assert {t["number"] for t in data["tickets"]} == {by_phone, by_account}
    assert [a["account_number"] for a in data["accounts"]] == [ACCOUNT] and data["accounts"][0]["name"] == "王**"
    assert [c["id"] for c in data["conversations"]] == [conv]
    data = await (await client.get(f"/api/search?q={ACCOUNT}")).json()
    assert [t["number"] for t in data["tickets"]] == [by_account, by_phone]  # and the account's phone's
    assert [c["id"] for c in data["conversations"]] == [conv]
    data = await (await client.get("/api/search?q=建设路")).json()
    assert [t["number"] for t in data["tickets"]] == [by_phone]
    # The ticket list's own text box takes a phone number and a 户号 too.
    listed = await (await client.get(f"/api/tickets?q={PHONE}")).json()
    assert [t["number"] for t in listed["items"]] == [by_phone]
    listed = await (await client.get(f"/api/tickets?q={ACCOUNT}")).json()
    assert [t["number"] for t in listed["items"]] == [by_account, by_phone]  # the lifecycle found its account
    await login(client, "crew")  # department staff: their tickets only, no accounts or conversations
    data = await (await client.get(f"/api/search?q={PHONE}")).json()
    assert {t["number"] for t in data["tickets"]} == {by_phone, by_account}  # both are network_repair's
    assert data["accounts"] == [] and data["conversations"] == []


async def test_a_supervisors_whisper_reaches_staff_and_never_the_resident(client: TestClient, ctx, staff,
                                                                        channel) -> None:
    heard: list[dict[str, Any]] = []
    ctx.live.subscribe(heard.append)
    conv = await _waiting(ctx, "resident-w-1", "我要投诉")
    await service.take_over(ctx, conv, staff["agent1"])
    sent_before = list(channel.delivered)
    headers = await login(client, "zhao.supervisor")
    # The rule: a supervisor does not speak in another agent's conversation; they whisper or take it over.
    refused = await client.post(f"/api/conversations/{conv}/reply", json={"text": "我是主管"}, headers=headers)
    assert refused.status == 409
    resp = await client.post(f"/api/conversations/{conv}/whisper", json={"text": "先核实户号再答复"},
                             headers=headers)
    assert resp.status == 201
    assert channel.delivered == sent_before  # nothing went to the resident
    async with ctx.readers() as session:
        texts = (await session.execute(select(Message.text).where(Message.conversation_id == conv))).scalars().all()
    assert "先核实户号再答复" not in texts
    event = next(e for e in heard if e["type"] == "conversation.whisper")
    assert "channel" not in event and "external_user" not in event  # channels never hear it
    assert event["agent_id"] == staff["agent1"].id and event["whisper"]["by"] == "zhao.supervisor"
    await login(client, "agent1")
    data = await (await client.get(f"/api/conversations/{conv}")).json()
    assert [(w["text"], w["by"]) for w in data["whispers"]] == [("先核实户号再答复", "zhao.supervisor")]
    assert data["agent_name"] == "agent1"


async def test_a_supervisor_reassigns_a_conversation_and_the_resident_is_told(client: TestClient, ctx, staff,
                                                                            channel) -> None:
    conv = await _waiting(ctx, "resident-r-1", "你好")
    await service.take_over(ctx, conv, staff["agent1"])
    await service.agent_reply(ctx, conv, staff["agent1"], "您好")
    headers = await login(client, "agent1")
    assert (await client.post(f"/api/conversations/{conv}/reassign", json={"agent": "sup"},
                              headers=headers)).status == 403
    headers = await login(client, "zhao.supervisor")
    resp = await client.post(f"/api/conversations/{conv}/reassign", json={"agent": "sup"}, headers=headers)
    assert resp.status == 200
    assert channel.delivered[-1] == "人工客服已接入，sup为您服务。"
    async with ctx.readers() as session:
        row = await session.get(Conversation, conv)
        assert row is not None and row.agent_id == staff["sup"].id
        trail = (await session.execute(select(ConversationEvent).where(
            ConversationEvent.conversation_id == conv, ConversationEvent.action == "reassign"))).scalars().all()
    assert [(e.actor_name, e.data["from_agent_id"], e.data["to_agent_id"]) for e in trail] == [
        ("zhao.supervisor", staff["agent1"].id, staff["sup"].id)]
    data = await (await client.get(f"/api/conversations/{conv}")).json()
    replies = [m for m in data["messages"] if m["sender_kind"] == "agent"]
    assert [m["sender_name"] for m in replies] == ["agent1"]  # every speaker by name, for staff
    bad = await client.post(f"/api/conversations/{conv}/reassign", json={"agent": "crew"}, headers=headers)
    assert bad.status == 422  # department staff do not talk with residents


async def test_waiting_conversations_go_to_online_agents_with_the_fewest_open_not_to_busy_ones(
        client: TestClient, ctx, staff, channel) -> None:
    first = await _waiting(ctx, "resident-p-0", "没人在线时来的")  # nobody online: it waits
    async with ctx.readers() as session:
        assert (await session.get(Conversation, first)).status == "waiting"  # type: ignore[union-attr]
    agent = await login(client, "agent1")
    assert (await (await client.get("/api/presence")).json())["status"] == "away"
    assert (await client.put("/api/presence", json={"status": "busy"}, headers=agent)).status == 200
    second = await _waiting(ctx, "resident-p-1", "忙碌的坐席不接")
    async with ctx.readers() as session:
        assert (await session.get(Conversation, second)).status == "waiting"  # type: ignore[union-attr]
    sup = await login(client, "zhao.supervisor")
    resp = await client.put("/api/presence", json={"status": "online"}, headers=sup)
    assert (await resp.json())["label"] == "在线"
    async with ctx.readers() as session:  # going online takes the queue, oldest first
        served = {c.id: c.agent_id for c in (await session.execute(select(Conversation))).scalars()}
    assert served == {first: staff["zhao.supervisor"].id, second: staff["zhao.supervisor"].id}
    await login(client, "agent1")
    assert (await client.put("/api/presence", json={"status": "online"}, headers=agent)).status == 403  # old csrf
    agent = await login(client, "agent1")
    await client.put("/api/presence", json={"status": "online"}, headers=agent)
    third = await _waiting(ctx, "resident-p-2", "给空闲的坐席")
    fourth = await _waiting(ctx, "resident-p-3", "再来一个")
    async with ctx.readers() as session:
        served = {c.id: c.agent_id for c in (await session.execute(select(Conversation))).scalars()}
        presence = await session.get(AgentPresence, staff["agent1"].id)
    assert served[third] == staff["agent1"].id  # agent1 had none open, the supervisor two
    assert served[fourth] == staff["agent1"].id  # one against two: still agent1
    assert presence is not None and presence.last_assigned_at is not None
    overview = await login(client, "zhao.supervisor")
    data = await (await client.get("/api/supervision/overview", headers=overview)).json()
    people = {a["username"]: a for a in data["agents"]}
    assert people["agent1"]["presence"] == "online" and people["agent1"]["open_conversations"] == 2
    assert people["agent1"]["signed_in"] and data["queue"]["waiting"] == 0


async def test_the_supervisors_overview_counts_the_queue_and_overdue_tickets(client: TestClient, ctx, clock,
                                                                           channel) -> None:
    await _waiting(ctx, "resident-o-1", "等待中")
    await _ticket(ctx)
    clock.advance(days=10)
    await login(client, "zhao.supervisor")
    data = await (await client.get("/api/supervision/overview")).json()
    assert data["queue"]["waiting"] == 1 and data["queue"]["oldest_waiting_since"]
    assert data["overdue_by_department"] == [
        {"department": "network_repair", "department_name": data["overdue_by_department"][0]["department_name"],
         "overdue": 1}]
    await login(client, "agent1")
    assert (await client.get("/api/supervision/overview")).status == 403


async def test_a_supervisor_chases_a_ticket_and_the_responsible_people_hear_of_it(client: TestClient, ctx,
                                                                                staff) -> None:
    number = await _ticket(ctx)
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, number, SERVICE, for_update=True)
        await lifecycle.transition(session, ctx.router, ticket, "assign", SYSTEM, ctx.clock(), assignee="crew")
    headers = await login(client, "agent1")
    assert (await client.post(f"/api/tickets/{number}/chase", json={"note": "快"}, headers=headers)).status == 403
    headers = await login(client, "zhao.supervisor")
    view = await (await client.get(f"/api/tickets/{number}")).json()
    assert "chase" in view["allowed_actions"]
    empty = await client.post(f"/api/tickets/{number}/chase", json={"note": ""}, headers=headers)
    assert empty.status == 422
    resp = await client.post(f"/api/tickets/{number}/chase", json={"note": "居民第三次来电，请今天到场"},
                             headers=headers)
    assert resp.status == 200
    trail = (await resp.json())["events"]
    assert (trail[-1]["action"], trail[-1]["note"]) == ("chase", "居民第三次来电，请今天到场")
    await login(client, "crew")
    notices = (await (await client.get("/api/notifications")).json())["items"]
    assert notices[0]["kind"] == "chase" and "居民第三次来电" in notices[0]["message"]
    await login(client, "sun.repair")  # the department's supervisor
    assert (await (await client.get("/api/notifications")).json())["items"][0]["kind"] == "chase"


async def test_supervisors_manage_canned_replies_and_agents_read_them(client: TestClient) -> None:
    agent = await login(client, "agent1")
    body = {"shortcut": "arrears", "title": "欠费提醒", "text": "您的户号{户号}目前欠费，请及时缴纳。"}
    own = await client.post("/api/canned_replies", json=body, headers=agent)  # an agent's own, never shared
    assert own.status == 201 and (await own.json())["personal"] is True
    assert (await client.delete(f"/api/canned_replies/{(await own.json())['id']}", headers=agent)).status == 200
    sup = await login(client, "zhao.supervisor")
    created = await client.post("/api/canned_replies", json=body, headers=sup)
    assert created.status == 201
    reply_id = (await created.json())["id"]
    assert (await client.post("/api/canned_replies", json=body, headers=sup)).status == 409
    bad = await client.post("/api/canned_replies", json={**body, "shortcut": "has space"}, headers=sup)
    assert bad.status == 422
    changed = await client.put(f"/api/canned_replies/{reply_id}", json={**body, "title": "欠费"}, headers=sup)
    assert (await changed.json())["title"] == "欠费"
    await login(client, "agent1")
    data = await (await client.get("/api/canned_replies")).json()
    assert [(c["shortcut"], c["title"]) for c in data["items"]] == [("arrears", "欠费")]
    assert "户号" in data["placeholders"]
    sup = await login(client, "zhao.supervisor")
    assert (await client.delete(f"/api/canned_replies/{reply_id}", headers=sup)).status == 200
    assert (await client.delete(f"/api/canned_replies/{reply_id}", headers=sup)).status == 404


async def test_the_ivr_counts_agents_on_duty_by_their_presence(ctx, staff) -> None:
    from hotline.ivr.engine import FlowRunner

    class Runner:
        agent_uri = "sip:queue@127.0.0.1"

        def __init__(self) -> None:
            self.ctx = ctx

        async def _business_hours(self) -> bool:
            return True

    runner = Runner()
    on_duty = FlowRunner._agents_on_duty
    assert await on_duty(runner) is True  # type: ignore[arg-type]  # nobody uses presence: the hours decide
    async with ctx.sessions.begin() as session:
        session.add(AgentPresence(staff_id=staff["agent1"].id, status="busy", updated_at=ctx.clock()))
    assert await on_duty(runner) is False  # type: ignore[arg-type]
    async with ctx.sessions.begin() as session:
        row = await session.get(AgentPresence, staff["agent1"].id)
        assert row is not None
        row.status = "online"
    assert await on_duty(runner) is True  # type: ignore[arg-type]
