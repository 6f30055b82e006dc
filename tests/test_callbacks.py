"""The closed loop: every resolution gets its callback (回访) on the resident's channel; dissatisfaction
reopens the ticket; unanswered surveys reach agents; WeChat's 48-hour window falls back to a template
message with a signed link; the scheduler carries a task out once, across restarts and processes."""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select

from hotline.actors import Actor
from hotline.callbacks import links
from hotline.callbacks.scheduler import calling_window, next_calling_time, sweep
from hotline.context import build_context
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import TicketDraft
from models import CallbackTask, Conversation, Notification, Ticket, TicketEvent
from tests import wechat_client as wx
from tests.conftest import SERVICE, eventually, local, login
from tests.test_wechat import _push, wechat, wechat_mode  # noqa: F401  (fixtures)

OPENID = "openid-callback"


async def _wechat_ticket(ctx, client, openid: str = OPENID) -> str:
    """A WeChat resident reports a leak; the ticket is filed from their conversation."""
    await _push(client, wx.message("text", openid, 7001, Content="楼道水管漏水了"))
    async with ctx.readers() as session:
        conv = (await session.execute(select(Conversation).where(Conversation.external_user == openid))).scalar_one()
    resp = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "leak", "description": "楼道水管漏水", "channel": "wechat",
        "conversation_id": conv.id})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["number"]


async def _act(ctx, number: str, action: str, actor: Actor, **kwargs: Any) -> Ticket:
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, number, actor)
        await lifecycle.transition(session, ctx.router, ticket, action, actor, ctx.clock(), **kwargs)
        return ticket


async def _resolve(ctx, staff, number: str, note: str = "已更换漏水管段") -> None:
    ticket = await _act(ctx, number, "assign", staff["sun.repair"], assignee="crew")
    if ticket.status == "assigned":
        await _act(ctx, number, "start", staff["crew"])
    await _act(ctx, number, "resolve", staff["crew"], note=note)


async def _ticket(ctx, number: str) -> Ticket:
    async with ctx.readers() as session:
        return (await session.execute(select(Ticket).where(Ticket.number == number))).scalar_one()


async def _tasks(ctx, number: str) -> list[CallbackTask]:
    async with ctx.readers() as session:
        return list((await session.execute(select(CallbackTask).join(Ticket, Ticket.id == CallbackTask.ticket_id)
                                           .where(Ticket.number == number).order_by(CallbackTask.id))).scalars())


def _texts(fake_wx) -> list[str]:
    return [m["text"]["content"] for m in fake_wx.sent]


def _last_survey(fake_wx) -> str:
    """The latest survey sent (the resolution's own notices go out beside it, in any order)."""
    return next(t for t in reversed(_texts(fake_wx)) if "【回访】" in t)


async def _answer(client, text: str, msg_id: int) -> str:
    """The resident sends text; what they hear back in WeChat's passive reply."""
    resp = await _push(client, wx.message("text", OPENID, msg_id, Content=text))
    return wx.reply_text(await resp.text()) or ""


async def test_a_dissatisfied_resident_reopens_the_ticket_and_a_satisfied_one_closes_it(
        wechat, ctx, staff, clock) -> None:
    client, _, fake_wx = wechat
    number = await _wechat_ticket(ctx, client)
    await _resolve(ctx, staff, number)  # Thursday 24 September 09:00; Friday is the Mid-Autumn holiday
    task = (await _tasks(ctx, number))[0]
    assert task.due_at == local(2026, 9, 28, 17, 30) and task.state == "pending"  # the next working day

    assert await sweep(ctx, local(2026, 9, 28, 17, 0)) == 0  # not yet due
    clock.now = local(2026, 9, 28, 17, 31)
    assert await sweep(ctx, clock()) == 1
    survey = _last_survey(fake_wx)
    assert number in survey and "已更换漏水管段" in survey and "1 满意" in survey and "3 不满意" in survey
    assert await sweep(ctx, clock()) == 0  # carried out once

    heard = await _answer(client, "3", 7002)
    await eventually(lambda: any("重新安排处理" in t for t in [heard, *_texts(fake_wx)]))
    ticket = await _ticket(ctx, number)
    assert (ticket.status, ticket.reopen_count, ticket.satisfaction) == ("assigned", 1, 1)
    assert ticket.resolution_due_at > clock()  # a fresh limit
    async with ctx.readers() as session:
        steps = [e.data.get("step") for e in (await session.execute(select(TicketEvent).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.action == "escalate"))).scalars()]
        notified = (await session.execute(select(Notification.kind).where(
            Notification.staff_id == staff["sun.repair"].id))).scalars().all()
    assert "reopened" in steps and "reopened" in notified  # chased at once
    # The resident hears it, with the new date.
    assert any("重新安排处理" in t and number in t and "前办结" in t for t in [heard, *_texts(fake_wx)])
    first = (await _tasks(ctx, number))[0]
    assert (first.state, first.result) == ("answered", "dissatisfied")

    # Resolved again: a new survey for the new resolution; 满意 closes the ticket.
    clock.now = local(2026, 9, 29, 10, 0)
    await _resolve(ctx, staff, number, note="重新焊接管道接口")
    tasks = await _tasks(ctx, number)
    assert [t.resolution for t in tasks] == [0, 1]
    clock.now = tasks[1].due_at
    assert await sweep(ctx, clock()) == 1
    assert "重新焊接管道接口" in _last_survey(fake_wx)
    heard = await _answer(client, "满意，谢谢师傅", 7003)
    ticket = await _ticket(ctx, number)
    assert (ticket.status, ticket.satisfaction) == ("closed", 5)
    assert "已办结归档" in heard
    assert [(t.state, t.result) for t in await _tasks(ctx, number)] == [
        ("answered", "dissatisfied"), ("answered", "satisfied")]

    # A second answer changes nothing and is kept as a message.
    heard = await _answer(client, "3", 7004)
    assert (await _ticket(ctx, number)).status == "closed"
    assert "已经记录" in heard
    resp = await client.get("/api/callbacks", params={"ticket": number}, headers=SERVICE)
    items = (await resp.json())["items"]
    assert [(i["state"], i["result"], i["channel"]) for i in items] == [
        ("answered", "dissatisfied", "wechat"), ("answered", "satisfied", "wechat")]
    assert items[1]["attempts"][0]["channel"] == "wechat" and items[1]["attempts"][0]["result"] == "sent"


async def test_other_words_go_to_the_bot_and_unclear_ones_are_asked_once_more(wechat, ctx, staff, clock) -> None:
    client, rasa, fake_wx = wechat
    number = await _wechat_ticket(ctx, client)
    await _resolve(ctx, staff, number)
    clock.now = local(2026, 9, 28, 17, 31)
    await sweep(ctx, clock())
    asked = len(rasa.received)
    await _push(client, wx.message("text", OPENID, 7102, Content="对了，营业厅周六上班吗"))
    assert len(rasa.received) == asked + 1  # not an answer: the bot takes it, the survey stays open
    assert (await _tasks(ctx, number))[0].state == "in_progress"
    assert "没有看懂" in await _answer(client, "嗯", 7103)
    assert "联系" in await _answer(client, "好的", 7104)
    task = (await _tasks(ctx, number))[0]
    assert (task.result, task.manual, task.state) == ("unclear", True, "in_progress")  # an agent phones
    assert len(rasa.received) == asked + 1
    assert (await _ticket(ctx, number)).status == "resolved"


async def test_outside_the_48_hour_window_a_template_links_to_a_signed_survey(wechat, ctx, staff, clock) -> None:
    client, _, fake_wx = wechat
    ctx.channels["wechat"].templates = {"survey": {"template_id": "TPL-SURVEY", "fields": {
        "first": "请评价", "keyword1": "{ticket}"}}}
    number = await _wechat_ticket(ctx, client)
    await _resolve(ctx, staff, number)
    clock.now = local(2026, 9, 28, 17, 31)
    await eventually(lambda: any("已处理完毕" in t for t in _texts(fake_wx)))  # the resolution's notice is out
    fake_wx.fail_next = [45015]  # the customer-service message is refused: the window is closed
    await sweep(ctx, clock())
    template = fake_wx.templates[-1]
    assert template["template_id"] == "TPL-SURVEY" and template["touser"] == OPENID
    assert template["data"]["keyword1"]["value"] == number
    assert (await _tasks(ctx, number))[0].attempts[-1]["result"] == "template_sent"
    assert template["url"].startswith(ctx.config.public_url + "/survey/")
    path = "/survey/" + template["url"].rsplit("/survey/", 1)[1]

    page = await client.get(path)
    text = await page.text()
    assert page.status == 200 and number in text and "基本满意" in text and "<script" not in text
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    token = path.rsplit("/", 1)[1]
    task_id, expires, mac = token.split(".")
    for forged in (f"{int(task_id) + 1}.{expires}.{mac}", f"{task_id}.{int(expires) + 9999}.{mac}",
                   f"{task_id}.{expires}.{mac[:-2]}AA", "1.2", "garbage"):
        assert (await client.get(f"/survey/{forged}")).status == 403
        assert (await client.post(f"/survey/{forged}", data={"answer": "satisfied"})).status == 403
    assert (await client.post(path, data={"answer": "basically_satisfied"})).status == 200
    assert (await client.post(path, data={"answer": "dissatisfied"})).status == 409  # recorded once
    ticket = await _ticket(ctx, number)
    assert (ticket.status, ticket.satisfaction) == ("closed", 3)
    clock.advance(hours=ctx.config.callback.link_valid_hours + 1)
    assert links.verify(ctx, token, clock()) is None  # and it expires


async def test_unanswered_surveys_go_to_agents_who_record_the_result(client, ctx, staff, clock) -> None:
    from hotline.conversations import service
    received = await service.receive(ctx, "web", "resident-web-callback", "水表漏水", to_bot=False)
    resp = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "meter_fault", "description": "水表漏水", "channel": "web",
        "conversation_id": received.conversation_id})
    number = (await resp.json())["number"]
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, number, staff["admin"])
        for action, kwargs in [("assign", {"assignee": "meterman"}), ("start", {}), ("resolve", {"note": "换表"})]:
            await lifecycle.transition(session, ctx.router, ticket, action, staff["admin"], clock(), **kwargs)
    due = (await _tasks(ctx, number))[0].due_at  # Monday 28 September 17:30
    for hours in (0, 2):  # attempts two hours apart
        clock.now = due + dt.timedelta(hours=hours)
        assert await sweep(ctx, clock()) == 1
    # The third falls at 21:30, outside calling hours: nothing goes out, the task waits for 08:00.
    clock.now = due + dt.timedelta(hours=4)
    assert await sweep(ctx, clock()) == 1
    task = (await _tasks(ctx, number))[0]
    assert len(task.attempts) == 2 and task.next_attempt_at == local(2026, 9, 29, 8, 0)
    clock.now = local(2026, 9, 29, 8, 0)
    assert await sweep(ctx, clock()) == 1
    task = (await _tasks(ctx, number))[0]
    assert [a["result"] for a in task.attempts] == ["stored"] * 3 and not task.manual  # nobody online
    clock.now = local(2026, 9, 29, 10, 0)
    await sweep(ctx, clock())
    task = (await _tasks(ctx, number))[0]
    assert task.manual and task.state == "in_progress"  # in the console's 回访任务 for an agent

    headers_agent = await login(client, "agent1")
    listed = (await (await client.get("/api/callbacks", params={"manual": "true"})).json())["items"]
    assert [i["ticket"] for i in listed] == [number]
    refused = await client.post(f"/api/callbacks/{task.id}/result", json={"reached": True}, headers=headers_agent)
    assert refused.status == 422
    ok = await client.post(f"/api/callbacks/{task.id}/result", headers=headers_agent,
                           json={"reached": True, "answer": "satisfied", "note": "电话回访，居民表示满意"})
    assert ok.status == 200 and (await ok.json())["result"] == "satisfied"
    assert (await _ticket(ctx, number)).status == "closed"
    again = await client.post(f"/api/callbacks/{task.id}/result", headers=headers_agent,
                              json={"reached": False})
    assert again.status == 409


async def test_no_answer_by_the_expiry_closes_the_ticket_as_unreachable(ctx, staff, clock) -> None:
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.create_ticket(session, ctx.router, TicketDraft(
            category="repair", business_type="leak", description="门口漏水", channel="phone", phone="13800000000"),
            staff["agent1"], clock())
        number = ticket.number
    await _resolve(ctx, staff, number)
    task = (await _tasks(ctx, number))[0]
    await sweep(ctx, task.due_at)
    task = (await _tasks(ctx, number))[0]
    assert task.manual and "电话回访" in task.note  # a telephone ticket: straight to agents
    await sweep(ctx, task.expires_at)
    task = (await _tasks(ctx, number))[0]
    ticket = await _ticket(ctx, number)
    assert (task.state, task.result) == ("expired", "unreachable")
    assert (ticket.status, ticket.satisfaction, ticket.callback_result) == ("closed", None, "回访期限内未联系上居民")


async def test_a_task_is_carried_out_once_across_a_restart_and_two_processes(
        wechat, ctx, staff, clock, config) -> None:
    client, _, fake_wx = wechat
    number = await _wechat_ticket(ctx, client)
    await _resolve(ctx, staff, number)
    due = (await _tasks(ctx, number))[0].due_at
    # The service was down when the task fell due; two processes come back and sweep at once.
    later = local(2026, 9, 29, 9, 0)
    other = build_context(config, clock)
    other.channels = ctx.channels
    try:
        counts = await asyncio.gather(sweep(ctx, later), sweep(other, later))
    finally:
        await other.engine.dispose()
    assert sorted(counts) == [0, 1] and later > due
    assert sum("【回访】" in t and number in t for t in _texts(fake_wx)) == 1


def test_calling_hours() -> None:
    from zoneinfo import ZoneInfo
    tz = ZoneInfo("Asia/Shanghai")
    window = calling_window("08:00-21:00")
    assert next_calling_time(local(2026, 9, 25, 9, 0), window, tz) == local(2026, 9, 25, 9, 0)
    assert next_calling_time(local(2026, 9, 25, 21, 0), window, tz) == local(2026, 9, 26, 8, 0)
    assert next_calling_time(local(2026, 9, 25, 6, 0), window, tz) == local(2026, 9, 25, 8, 0)
    with pytest.raises(ValueError, match="calling_hours"):
        calling_window("21:00-08:00")
