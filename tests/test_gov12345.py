"""The 12345 exchange end to end: a fake 12345 platform on 127.0.0.1 pushes orders and receives our messages.

The outbox worker is off; each test delivers with `deliver` at the test clock's time, so
"12345 is down for an hour" takes no hour.
"""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from hotline.app import create_app
from hotline.channels.gov12345 import Gov12345Config
from hotline.config import ConfigError
from hotline.context import AppContext, build_context
from hotline.integrations import outbox
from hotline.integrations.gov12345.adapter import TARGET
from models import Gov12345Order, InboundNonce, Notification, OutboxMessage, Ticket, TicketEvent
from tests.conftest import SERVICE, Clock, login
from tests.fake_gov12345 import FakeGov12345, order

SETTINGS = outbox.Settings(backoff_seconds=5, backoff_max_seconds=600, max_attempts=15)


@pytest_asyncio.fixture
async def fake() -> AsyncIterator[FakeGov12345]:
    platform = await FakeGov12345().start()
    yield platform
    await platform.stop()


@pytest_asyncio.fixture
async def gclient(ctx: AppContext, staff: Any, fake: FakeGov12345) -> AsyncIterator[TestClient]:
    ctx.config.channels["gov12345"] = Gov12345Config(inbound_secret=fake.inbound_secret,
                                                     outbound_secret=fake.outbound_secret, base_url=fake.url,
                                                     worker=False)
    async with TestClient(TestServer(create_app(ctx))) as client:
        yield client


async def deliver(ctx: AppContext, clock: Clock) -> int:
    return await outbox.deliver_due(ctx.sessions, clock(), SETTINGS)


async def push_order(fake: FakeGov12345, client: TestClient, clock: Clock, order_no: str, **kw: Any) -> str:
    status, body = await fake.push(client, "orders", order(order_no, clock(), **kw), clock())
    assert status == 200, body
    assert body["order_no"] == order_no
    return str(body["ticket"])


async def act(client: TestClient, number: str, action: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    resp = await client.post(f"/api/tickets/{number}/{action}", json=body, headers=headers)
    data = await resp.json()
    assert resp.status == 200, data
    return dict(data)


async def get(client: TestClient, number: str) -> dict[str, Any]:
    resp = await client.get(f"/api/tickets/{number}", headers=SERVICE)
    assert resp.status == 200
    return dict(await resp.json())


async def work_to_resolution(client: TestClient, number: str) -> None:
    """The repair centre's supervisor assigns, the crew starts and resolves."""
    sup = await login(client, "sun.repair")
    await act(client, number, "assign", sup, assignee="crew")
    crew = await login(client, "crew")
    await act(client, number, "start", crew, note="抢修人员出发")
    await act(client, number, "resolve", crew, note="更换DN50管段，已恢复供水")


async def test_leak_order_becomes_a_routed_signed_ticket_and_every_step_reaches_12345_in_order(
        ctx, gclient, fake, clock) -> None:
    number = await push_order(fake, gclient, clock, "GD12345-0001")
    ticket = await get(gclient, number)
    assert (ticket["channel"], ticket["external_ref"]) == ("gov12345", "GD12345-0001")
    assert ticket["department_name"] == "管网抢修中心" and ticket["business_type"] == "leak"
    # The stricter limits: 12345's sign-for hour beats our 4-hour response; our 24 h beat its 3 days.
    assert dt.datetime.fromisoformat(ticket["response_due_at"]) == clock() + dt.timedelta(hours=1)
    assert dt.datetime.fromisoformat(ticket["resolution_due_at"]) == clock() + dt.timedelta(hours=24)
    assert ticket["attachments"][0]["uri"] == "https://12345.example.gov.cn/files/a1.jpg"

    clock.advance(minutes=5)
    await work_to_resolution(gclient, number)
    assert await deliver(ctx, clock) == 3
    assert fake.kinds() == ["sign", "progress", "reply"]
    sign, progress, reply = (r.body for r in fake.received)
    assert sign["order_no"] == "GD12345-0001" and sign["unit"] == "管网抢修中心" and sign["on_time"] is True
    assert progress["note"] == "抢修人员出发"
    assert reply["content"] == "更换DN50管段，已恢复供水"
    assert len({r.body["message_id"] for r in fake.received}) == 3
    assert fake.bad_signatures == 0

    # 12345 does its own callback: the utility's own survey is not scheduled.
    resp = await gclient.get(f"/api/gov12345/tickets/{number}", headers=SERVICE)
    block = await resp.json()
    assert [m["kind"] for m in block["messages"]] == ["sign", "progress", "reply"]
    assert {m["state"] for m in block["messages"]} == {"sent"}
    assert block["signed_at"] and block["sign_due_at"] and block["due_at"]
    async with ctx.readers() as session:
        from models import CallbackTask
        task = (await session.execute(select(CallbackTask))).scalar_one()
    assert task.next_attempt_at is None and task.state == "pending" and "12345" in task.note

    # 12345's callback: satisfied → the ticket is closed, the task carries 12345's result.
    status, body = await fake.push(gclient, "satisfaction", {"order_no": "GD12345-0001", "result": "满意"}, clock())
    assert status == 200 and body["status"] == "closed", body
    async with ctx.readers() as session:
        task = (await session.execute(select(CallbackTask))).scalar_one()
    assert (task.state, task.result, task.answered_by) == ("answered", "satisfied", "12345热线")
    assert (await get(gclient, number))["satisfaction"] == 5
    assert await deliver(ctx, clock) == 0  # nothing to tell 12345 about its own callback


async def test_the_same_order_pushed_three_times_is_one_ticket(ctx, gclient, fake, clock) -> None:
    numbers = set()
    for _ in range(3):
        numbers.add(await push_order(fake, gclient, clock, "GD12345-0002"))
        clock.advance(seconds=1)  # each push is signed anew, as a retrying platform does
    assert len(numbers) == 1
    async with ctx.readers() as session:
        assert (await session.execute(select(func.count()).select_from(Ticket))).scalar_one() == 1
        assert (await session.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 1


async def test_12345_down_for_the_whole_resolution_then_back_an_hour_later(ctx, gclient, fake, clock) -> None:
    fake.up = False
    number = await push_order(fake, gclient, clock, "GD12345-0003")
    await deliver(ctx, clock)
    await work_to_resolution(gclient, number)
    for _ in range(5):  # the worker keeps trying while it is down, backing off
        clock.advance(minutes=3)
        assert await deliver(ctx, clock) == 0
    async with ctx.readers() as session:
        rows = (await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars().all()
    assert [r.state for r in rows] == ["pending"] * 3
    assert rows[0].attempts >= 3 and rows[0].last_error and "503" in rows[0].last_error
    assert rows[1].attempts == 0  # held back behind the first: order per order number
    assert rows[0].next_attempt_at is not None and rows[0].next_attempt_at > clock()

    clock.advance(hours=1)
    fake.up = True
    assert await deliver(ctx, clock) == 3
    assert fake.kinds() == ["sign", "progress", "reply"]
    assert fake.duplicates == 0
    assert await deliver(ctx, clock) == 0


async def test_a_restart_in_between_loses_nothing(ctx, gclient, fake, clock, config) -> None:
    fake.up = False
    number = await push_order(fake, gclient, clock, "GD12345-0004")
    await work_to_resolution(gclient, number)
    await deliver(ctx, clock)
    # A process claimed the next attempt and died while sending: its lease runs out, another delivers.
    async with ctx.sessions.begin() as session:
        claimed = await outbox.claim(session, clock() + dt.timedelta(hours=1), [TARGET], SETTINGS)
    assert [m.kind for m in claimed] == ["sign"]
    await ctx.engine.dispose()

    restarted = build_context(config, clock)  # a new process on the same store
    try:
        fake.up = True
        clock.advance(hours=1, minutes=2)  # past the dead process's lease
        assert await outbox.deliver_due(restarted.sessions, clock(), SETTINGS) == 3
        assert fake.kinds() == ["sign", "progress", "reply"]
    finally:
        await restarted.engine.dispose()


async def test_extension_approved_by_12345_moves_the_due_time_refused_moves_nothing(ctx, gclient, fake,
                                                                                   clock) -> None:
    number = await push_order(fake, gclient, clock, "GD12345-0005")
    await act(gclient, number, "assign", await login(gclient, "sun.repair"), assignee="crew")
    crew = await login(gclient, "crew")
    due_before = (await get(gclient, number))["resolution_due_at"]
    wanted = (clock() + dt.timedelta(days=2)).isoformat()
    await act(gclient, number, "request_extension", crew, note="需要停水开挖，等路政审批", due_at=wanted)
    # 12345 decides, not the supervisor.
    admin = await login(gclient, "admin")
    resp = await gclient.post(f"/api/tickets/{number}/approve_extension", json={}, headers=admin)
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "decided_by_gov12345"
    await deliver(ctx, clock)
    assert fake.kinds() == ["sign", "extension"]
    assert fake.received[1].body["reason"] == "需要停水开挖，等路政审批"
    assert fake.received[1].body["due_at"] == wanted

    status, body = await fake.push(gclient, "decisions", {"order_no": "GD12345-0005", "request": "extension",
                                                          "approved": False, "note": "理由不充分"}, clock())
    assert status == 200, body
    ticket = await get(gclient, number)
    assert ticket["resolution_due_at"] == due_before and ticket["extension"] is None

    clock.advance(minutes=10)
    crew = await login(gclient, "crew")
    await act(gclient, number, "request_extension", crew, note="路政审批已提交", due_at=wanted)
    granted = clock() + dt.timedelta(days=1, hours=12)
    status, body = await fake.push(gclient, "decisions", {"order_no": "GD12345-0005", "request": "extension",
                                                          "approved": True, "due_at": granted.isoformat()}, clock())
    assert status == 200, body
    ticket = await get(gclient, number)
    assert dt.datetime.fromisoformat(ticket["resolution_due_at"]) == granted and ticket["extension"] is None
    assert [e["action"] for e in ticket["events"]][-3:] == ["reject_extension", "request_extension",
                                                           "approve_extension"]
    await deliver(ctx, clock)
    assert fake.kinds() == ["sign", "extension", "extension"]


async def test_dissatisfied_reopens_and_escalates_and_a_redispatch_signs_again(ctx, gclient, fake, clock) -> None:
    number = await push_order(fake, gclient, clock, "GD12345-0006")
    await work_to_resolution(gclient, number)
    status, body = await fake.push(gclient, "satisfaction", {"order_no": "GD12345-0006", "result": "不满意",
                                                             "note": "还在漏"}, clock())
    assert status == 200 and body["status"] == "assigned", body
    ticket = await get(gclient, number)
    assert ticket["reopen_count"] == 1
    assert ticket["events"][-1]["action"] == "escalate"
    async with ctx.readers() as session:
        kinds = (await session.execute(select(Notification.kind))).scalars().all()
    assert "reopened" in kinds

    clock.advance(hours=2)
    new_due = clock() + dt.timedelta(days=1)
    status, body = await fake.push(gclient, "redispatch", {"order_no": "GD12345-0006", "reason": "居民反映仍漏水",
                                                           "due_at": new_due.isoformat()}, clock())
    assert status == 200, body
    ticket = await get(gclient, number)
    assert dt.datetime.fromisoformat(ticket["resolution_due_at"]) <= new_due
    await deliver(ctx, clock)
    assert fake.kinds() == ["sign", "progress", "reply", "sign"]


async def test_a_chase_is_an_escalation_step_and_a_notice_to_the_supervisor(ctx, gclient, fake, clock,
                                                                           staff) -> None:
    number = await push_order(fake, gclient, clock, "GD12345-0007")
    status, _ = await fake.push(gclient, "chases", {"order_no": "GD12345-0007", "content": "市民再次来电"}, clock())
    assert status == 200
    ticket = await get(gclient, number)
    assert ticket["events"][-1]["action"] == "escalate" and "市民再次来电" in ticket["events"][-1]["note"]
    async with ctx.readers() as session:
        notes = (await session.execute(select(Notification.staff_id, Notification.kind))).all()
    assert (staff["sun.repair"].id, "gov12345_chase") in notes


async def test_a_return_waits_for_12345(ctx, gclient, fake, clock) -> None:
    number = await push_order(fake, gclient, clock, "GD12345-0008")
    sup = await login(gclient, "sun.repair")
    await act(gclient, number, "assign", sup, assignee="crew")
    crew = await login(gclient, "crew")
    data = await act(gclient, number, "return", crew, note="小区内部管网，属物业管理")
    assert data["department"] == "network_repair" and data["events"][-1]["action"] == "hold"
    resp = await gclient.post(f"/api/tickets/{number}/return", json={"note": "再退"}, headers=crew)
    assert resp.status == 409
    await deliver(ctx, clock)
    assert fake.kinds() == ["sign", "return"] and fake.received[1].body["reason"] == "小区内部管网，属物业管理"

    status, _ = await fake.push(gclient, "decisions", {"order_no": "GD12345-0008", "request": "return",
                                                       "approved": True}, clock())
    assert status == 200
    ticket = await get(gclient, number)
    assert ticket["department"] == "customer_service" and ticket["events"][-1]["action"] == "return"
    async with ctx.readers() as session:
        assert (await session.execute(select(Gov12345Order.state))).scalar_one() == "returned"


async def test_refused_pushes_store_nothing(ctx, gclient, fake, clock) -> None:
    data = order("GD12345-0009", clock())
    status, body = await fake.push(gclient, "orders", data, clock(), secret="not-the-secret")
    assert (status, body["error"]) == (401, "invalid_signature")
    status, body = await fake.push(gclient, "orders", data, clock() - dt.timedelta(minutes=6))
    assert (status, body["error"]) == (401, "stale_timestamp")
    async with ctx.readers() as session:
        assert (await session.execute(select(func.count()).select_from(InboundNonce))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(Ticket))).scalar_one() == 0

    import json
    raw = json.dumps(data, ensure_ascii=False).encode()
    headers = fake.signed(raw, clock())
    assert (await gclient.post("/gov12345/orders", data=raw, headers=headers)).status == 200
    replay = await gclient.post("/gov12345/orders", data=raw, headers=headers)
    assert (replay.status, (await replay.json())["error"]) == (401, "replayed")

    clock.advance(seconds=1)
    status, body = await fake.push(gclient, "orders", order("GD12345-0010", clock(), due_at="tomorrow"), clock())
    assert status == 422 and body["details"][0]["field"] == "due_at"
    status, body = await fake.push(gclient, "orders", order("GD12345-0010", clock(), phone="call me"), clock())
    assert status == 422 and body["details"][0]["field"] == "phone"
    status, body = await fake.push(gclient, "nonsense", {}, clock())
    assert status == 404
    async with ctx.readers() as session:
        assert (await session.execute(select(func.count()).select_from(Ticket))).scalar_one() == 1


async def test_a_captured_outgoing_reply_replayed_at_redispatch_is_refused_and_reopens_nothing(
        ctx, gclient, fake, clock) -> None:
    """Our 办结回复, captured on the wire within the window, sent back to us as a 重办: refused three ways."""
    number = await push_order(fake, gclient, clock, "GD12345-0030")
    await work_to_resolution(gclient, number)
    await deliver(ctx, clock)
    reply = next(r for r in fake.received if r.kind == "reply")
    assert reply.body["order_no"] == "GD12345-0030"
    captured = {k: reply.headers[k] for k in ("Content-Type", "X-Timestamp", "X-Signature")}
    resp = await gclient.post("/gov12345/redispatch", data=reply.raw, headers=captured)
    assert (resp.status, (await resp.json())["error"]) == (401, "invalid_signature")

    # Even signed with the key 12345 pushes with, a reply is not a redispatch: its fields are refused.
    status, body = await fake.push(gclient, "redispatch", reply.body, clock())
    assert (status, body["error"]) == (422, "invalid_input")
    assert {d["field"] for d in body["details"]} >= {"message_id", "content", "resolved_at"}
    # And a push signed for another endpoint does not verify at this one.
    raw = json.dumps({"order_no": "GD12345-0030", "reason": "不满意"}, ensure_ascii=False).encode()
    resp = await gclient.post("/gov12345/redispatch", data=raw, headers=fake.signed(raw, clock(),
                                                                                     path="/gov12345/chases"))
    assert (resp.status, (await resp.json())["error"]) == (401, "invalid_signature")
    ticket = await get(gclient, number)
    assert ticket["status"] == "resolved" and ticket["reopen_count"] == 0
    assert not [e for e in ticket["events"] if e["action"] in ("reopen", "callback")]


async def test_one_key_for_both_directions_is_refused_at_start(ctx, staff) -> None:
    ctx.config.channels["gov12345"] = Gov12345Config(inbound_secret="same", outbound_secret="same")
    with pytest.raises(ConfigError, match="must differ"):
        create_app(ctx)


async def test_a_non_ascii_signature_is_a_clean_401(ctx, gclient, fake, clock) -> None:
    raw = json.dumps(order("GD12345-0031", clock()), ensure_ascii=False).encode()
    headers = {**fake.signed(raw, clock()), "X-Signature": "签名签名"}
    resp = await gclient.post("/gov12345/orders", data=raw, headers=headers)
    assert (resp.status, (await resp.json())["error"]) == (401, "invalid_signature")


async def test_the_endpoints_answer_404_while_no_secret_is_set(ctx, staff, fake, clock) -> None:
    async with TestClient(TestServer(create_app(ctx))) as client:
        status, _ = await fake.push(client, "orders", order("GD12345-0011", clock()), clock())
    assert status == 404


async def test_an_unknown_type_waits_for_a_person_and_is_signed_when_routed(ctx, gclient, fake, clock,
                                                                          staff) -> None:
    number = await push_order(fake, gclient, clock, "GD12345-0012", type_="井盖缺失")
    ticket = await get(gclient, number)
    assert ticket["department"] == "customer_service" and ticket["status"] == "new"
    assert await deliver(ctx, clock) == 0  # not signed: nobody routed it yet
    resp = await gclient.get(f"/api/gov12345/tickets/{number}", headers=SERVICE)
    block = await resp.json()
    assert block["routed"] is False and block["signed_at"] is None
    async with ctx.readers() as session:
        notes = (await session.execute(select(Notification.staff_id, Notification.kind))).all()
    assert (staff["zhao.supervisor"].id, "gov12345_unrouted") in notes

    agent = await login(gclient, "agent1")
    await act(gclient, number, "reroute", agent, category="repair", business_type="valve_fault", note="阀门井")
    await deliver(ctx, clock)
    assert fake.kinds() == ["sign"]


async def test_a_refused_message_is_shown_to_admins_and_can_be_retried(ctx, gclient, fake, clock) -> None:
    fake.refuse_with = 400
    number = await push_order(fake, gclient, clock, "GD12345-0013")
    assert await deliver(ctx, clock) == 0
    admin = await login(gclient, "admin")
    resp = await gclient.get("/api/integrations/outbox/failed", headers=admin)
    items = (await resp.json())["items"]
    assert len(items) == 1 and items[0]["ticket"] == number and "HTTP 400" in items[0]["last_error"]
    agent = await login(gclient, "agent1")
    assert (await gclient.get("/api/integrations/outbox/failed", headers=agent)).status == 403

    fake.refuse_with = None
    admin = await login(gclient, "admin")
    resp = await gclient.post(f"/api/integrations/outbox/{items[0]['id']}/retry", headers=admin)
    assert resp.status == 200 and (await resp.json())["state"] == "pending"
    assert await deliver(ctx, clock) == 1
    assert fake.kinds() == ["sign"]


async def test_ordinary_tickets_send_nothing(ctx, gclient, fake, clock) -> None:
    resp = await gclient.post("/api/tickets", json={"category": "repair", "business_type": "leak",
                                                    "description": "漏水", "channel": "phone"}, headers=SERVICE)
    assert resp.status == 201
    number = (await resp.json())["number"]
    assert (await get(gclient, number))["external_ref"] is None
    async with ctx.readers() as session:
        assert (await session.execute(select(func.count()).select_from(OutboxMessage))).scalar_one() == 0
        assert (await session.execute(select(func.count()).select_from(TicketEvent))).scalar_one() == 1


@pytest.mark.parametrize("attempts", [1, 3, 6])
def test_backoff_doubles_and_is_capped(attempts: int) -> None:
    settings = outbox.Settings(backoff_seconds=5, backoff_max_seconds=20)
    assert outbox.backoff(settings, attempts).total_seconds() == min(5 * 2 ** (attempts - 1), 20)
