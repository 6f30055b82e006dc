"""Conversations on the web chat: bot, handoff, agent, close and rating; nothing a resident sends is lost.

The Rasa server here is a small HTTP stand-in on 127.0.0.1 so each test can make
it answer, ask for a person, fail or hang; the real bot is exercised in tests/bot/.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from hotline.app import create_app
from hotline.rasa.client import RasaClient
from models import Conversation, Message
from tests.conftest import login


class FakeRasa:
    def __init__(self) -> None:
        self.mode = "echo"
        self.delay = 0.5
        self.received: list[dict[str, Any]] = []

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.received.append(body)
        if self.mode == "error":
            return web.json_response({"error": "boom"}, status=500)
        if self.mode == "slow":
            await asyncio.sleep(5)
        if self.mode == "busy":  # slow but working, like one Rasa process under a burst
            await asyncio.sleep(self.delay)
        if self.mode == "handoff":
            return web.json_response([{"recipient_id": body["sender"], "text": "好的，正在为您转接人工客服。"},
                                      {"recipient_id": body["sender"],
                                       "custom": {"handoff": True, "reason": "requested", "category": "repair"}}])
        return web.json_response([{"recipient_id": body["sender"], "text": f"收到：{body['message']}"}])


@pytest_asyncio.fixture
async def chat(ctx, staff) -> AsyncIterator[tuple[TestClient, FakeRasa]]:
    fake = FakeRasa()
    rasa_app = web.Application()
    rasa_app.router.add_post("/webhooks/rest/webhook", fake.webhook)
    async with TestServer(rasa_app) as rasa_server:
        ctx.bot = RasaClient(str(rasa_server.make_url("/")), timeout=1.0)
        async with TestClient(TestServer(create_app(ctx))) as client:
            yield client, fake


async def _recv(ws, kind: str) -> dict[str, Any]:
    while True:
        data = await asyncio.wait_for(ws.receive_json(), timeout=5)
        if data["type"] == kind:
            return data


async def _status(ws, status: str) -> dict[str, Any]:
    while (data := await _recv(ws, "status"))["status"] != status:
        pass
    return data


async def _messages(ctx) -> list[tuple[str, str]]:
    async with ctx.readers() as session:
        rows = (await session.execute(select(Message.sender_kind, Message.text).order_by(Message.id))).all()
    return [(k, t) for k, t in rows]


async def _conversation(ctx) -> Conversation:
    async with ctx.readers() as session:
        return (await session.execute(select(Conversation).order_by(Conversation.id.desc()))).scalars().first()


async def test_the_bot_answers_and_everything_is_stored(chat, ctx) -> None:
    client, fake = chat
    ws = await client.ws_connect("/ws/chat?client=resident-0001")
    assert (await _recv(ws, "history"))["messages"] == []
    await ws.send_json({"type": "message", "id": "m1", "text": "家里没水了"})
    reply = await _recv(ws, "message")
    assert reply == {**reply, "sender": "bot", "text": "收到：家里没水了"}
    assert fake.received[0]["metadata"]["channel"] == "web"
    assert isinstance(fake.received[0]["metadata"]["conversation_id"], int)
    assert await _messages(ctx) == [("resident", "家里没水了"), ("bot", "收到：家里没水了")]
    await ws.close()


async def test_a_reload_resumes_the_conversation_and_a_resend_is_stored_once(chat, ctx) -> None:
    client, _ = chat
    ws = await client.ws_connect("/ws/chat?client=resident-0002")
    await _recv(ws, "history")
    await ws.send_json({"type": "message", "id": "m1", "text": "查水费"})
    await _recv(ws, "message")
    await ws.close()
    again = await client.ws_connect("/ws/chat?client=resident-0002")
    history = await _recv(again, "history")
    assert [m["text"] for m in history["messages"]] == ["查水费", "收到：查水费"]
    await again.send_json({"type": "message", "id": "m1", "text": "查水费"})  # the page resends after a drop
    assert (await _recv(again, "ack"))["duplicate"] is True
    assert len(await _messages(ctx)) == 2


async def test_handoff_take_over_reply_hand_back_close_and_rating(chat, ctx) -> None:
    client, fake = chat
    fake.mode = "handoff"
    ws = await client.ws_connect("/ws/chat?client=resident-0003")
    await _recv(ws, "history")
    await ws.send_json({"type": "message", "id": "m1", "text": "转人工"})
    await _status(ws, "waiting")
    conv = await _conversation(ctx)
    assert conv.status == "waiting" and conv.handoff_reason == "requested" and conv.bot_intent == "repair"

    fake.mode = "echo"
    await ws.send_json({"type": "message", "id": "m2", "text": "我家在建设路16号"})
    await _recv(ws, "ack")
    assert len(fake.received) == 1  # waiting: the bot no longer answers

    headers = await login(client, "agent1")
    resp = await client.post(f"/api/conversations/{conv.id}/take_over", headers=headers)
    assert resp.status == 200
    joined = await _status(ws, "agent")
    assert joined["agent"] == "agent1"
    resp = await client.post(f"/api/conversations/{conv.id}/reply", json={"text": "您好，我是客服，马上为您处理"},
                             headers=headers)
    assert (await resp.json())["delivery_status"] == "delivered"
    while (msg := await _recv(ws, "message"))["sender"] != "agent":
        pass
    assert msg["text"] == "您好，我是客服，马上为您处理"

    assert (await client.post(f"/api/conversations/{conv.id}/hand_back", headers=headers)).status == 200
    await ws.send_json({"type": "message", "id": "m3", "text": "谢谢"})
    while (msg := await _recv(ws, "message"))["sender"] != "bot":
        pass
    assert msg["text"] == "收到：谢谢"

    # The bot serves it again: ending it is a supervisor's to do now, not the agent's.
    assert (await client.post(f"/api/conversations/{conv.id}/close", headers=headers)).status == 403
    headers = await login(client, "sup")
    assert (await client.post(f"/api/conversations/{conv.id}/close", headers=headers)).status == 200
    while "打分" not in (await _recv(ws, "message"))["text"]:
        pass
    await ws.send_json({"type": "message", "id": "m4", "text": "5"})
    assert (await _recv(ws, "message"))["text"] == "感谢您的评价！"
    async with ctx.readers() as session:
        assert (await session.get(Conversation, conv.id)).satisfaction == 5


async def test_when_rasa_fails_or_hangs_the_message_reaches_a_person(chat, ctx) -> None:
    client, fake = chat
    for mode, user in (("error", "resident-0004"), ("slow", "resident-0005")):
        fake.mode = mode
        ws = await client.ws_connect(f"/ws/chat?client={user}")
        await _recv(ws, "history")
        await ws.send_json({"type": "message", "id": "m1", "text": "水管爆了快来人"})
        notice = await _recv(ws, "message")
        assert notice["sender"] == "system" and "人工客服" in notice["text"]
        await ws.close()
    async with ctx.readers() as session:
        convs = (await session.execute(select(Conversation).order_by(Conversation.id))).scalars().all()
    assert [(c.status, c.handoff_reason) for c in convs] == [("waiting", "bot_unavailable")] * 2
    assert [t for k, t in await _messages(ctx) if k == "resident"] == ["水管爆了快来人"] * 2


async def test_two_agents_race_for_one_conversation(chat, ctx, staff) -> None:
    client, fake = chat
    fake.mode = "handoff"
    ws = await client.ws_connect("/ws/chat?client=resident-0006")
    await _recv(ws, "history")
    await ws.send_json({"type": "message", "id": "m1", "text": "人工"})
    await _status(ws, "waiting")
    conv = await _conversation(ctx)
    from hotline.conversations import service
    results = await asyncio.gather(service.take_over(ctx, conv.id, staff["agent1"]),
                                   service.take_over(ctx, conv.id, staff["sup"]), return_exceptions=True)
    errors = [r for r in results if isinstance(r, service.ConversationError)]
    assert len(errors) == 1 and errors[0].status == 409
    headers = await login(client, "agent1" if isinstance(results[1], Exception) else "sup")
    ok = await client.post(f"/api/conversations/{conv.id}/reply", json={"text": "在的"}, headers=headers)
    assert ok.status == 200


async def test_bad_input_on_the_socket_is_refused_clearly(chat) -> None:
    client, _ = chat
    assert (await client.get("/ws/chat?client=x")).status == 400
    ws = await client.ws_connect("/ws/chat?client=resident-0007")
    await _recv(ws, "history")
    await ws.send_str("not json")
    assert (await _recv(ws, "error"))["message"] == "消息格式不正确"
    await ws.send_json({"type": "message", "text": "长" * 2001})
    assert "不超过" in (await _recv(ws, "error"))["message"]


async def test_the_chat_page_escapes_resident_text_and_runs_no_inline_script(chat) -> None:
    client, _ = chat
    resp = await client.get("/chat")
    page = await resp.text()
    assert "在线客服" in page and "<script>" not in page and "<style>" not in page
    policy = resp.headers["Content-Security-Policy"]
    assert "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy
    script = await client.get("/chat/static/chat.js")
    assert script.status == 200 and script.headers["X-Content-Type-Options"] == "nosniff"
    code = await script.text()
    assert "textContent" in code and "innerHTML" not in code
    assert (await client.get("/chat/static/chat.html")).status == 404
    assert (await client.get("/chat/static/..%2Fchannel.py")).status == 404


async def test_a_slow_bot_still_answers_and_the_resident_sees_it_typing(chat, ctx) -> None:
    """A bot slower than the old 4-second limit is slow, not down: it answers, nobody is handed off."""
    client, fake = chat
    ctx.bot = RasaClient(ctx.bot.base_url, ctx.config.bot.timeout_seconds)
    fake.mode, fake.delay = "busy", 4.5
    ws = await client.ws_connect("/ws/chat?client=resident-0010")
    await _recv(ws, "history")
    await ws.send_json({"type": "message", "id": "m1", "text": "营业厅几点上班"})
    frames = []
    while not (frames and frames[-1].get("type") == "message"):
        frames.append(await asyncio.wait_for(ws.receive_json(), timeout=10))
    # The receipt never waits for the bot; the page shows it typing until the answer comes.
    seen = [(f["type"], f.get("on")) for f in frames if f["type"] != "status"]
    assert seen == [("ack", None), ("typing", True), ("typing", False), ("message", None)]
    assert frames[-1] == {**frames[-1], "sender": "bot", "text": "收到：营业厅几点上班"}
    assert (await _conversation(ctx)).status == "bot"


async def test_past_the_long_limit_the_resident_reaches_a_person(chat, ctx) -> None:
    client, fake = chat
    ctx.bot = RasaClient(ctx.bot.base_url, 60)
    ctx.config.bot.timeout_seconds = 1.0
    fake.mode = "slow"
    ws = await client.ws_connect("/ws/chat?client=resident-0011")
    await _recv(ws, "history")
    await ws.send_json({"type": "message", "id": "m1", "text": "家里没水了"})
    assert "人工客服" in (await _recv(ws, "message"))["text"]
    conv = await _conversation(ctx)
    assert (conv.status, conv.handoff_reason) == ("waiting", "bot_unavailable")


async def test_an_overload_asks_residents_to_wait_instead_of_handing_them_all_off(chat, ctx) -> None:
    from hotline.conversations.bot_queue import BotQueue
    client, fake = chat
    ctx.bot = RasaClient(ctx.bot.base_url, 30)
    ctx.bot_queue = BotQueue(concurrency=1, queue_size=1)
    fake.mode, fake.delay = "busy", 0.3
    sockets = []
    for i in range(4):
        ws = await client.ws_connect(f"/ws/chat?client=resident-busy-{i}")
        await _recv(ws, "history")
        sockets.append(ws)
    for i, ws in enumerate(sockets):
        await ws.send_json({"type": "message", "id": "m1", "text": f"问题{i}"})
    heard: list[list[str]] = []
    for ws in sockets:
        texts = []
        while not texts or not texts[-1].startswith("收到"):
            message = await _recv(ws, "message")
            texts.append(message["text"])
        heard.append(texts)
    assert sum("请稍候" in t for texts in heard for t in texts) >= 1  # someone was asked to wait
    async with ctx.readers() as session:
        statuses = (await session.execute(select(Conversation.status))).scalars().all()
    assert statuses == ["bot"] * 4 and ctx.bot_queue.answered == 4 and ctx.bot_queue.waiting == 0


async def test_a_very_long_message_is_stored_whole_and_cut_for_the_bot(chat, ctx) -> None:
    from hotline.conversations import service
    _, fake = chat
    text = "我家水表" + "很长的描述" * 600
    received = await service.receive(ctx, "wechat", "openid-long", text)
    assert len(fake.received[-1]["message"]) == service.BOT_MAX_CHARS
    kinds = [(k, t) for k, t in await _messages(ctx)]
    assert ("resident", text) in kinds
    assert any(k == "system" and "前2000字" in t for k, t in kinds)
    assert received.duplicate is False


async def test_health_is_liveness_and_readiness_tells_when_an_enabled_part_is_down(chat, ctx) -> None:
    client, _ = chat
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["ready"] is True  # bot and SIP are disabled here
    ctx.config.bot.enabled = True
    ctx.health_checks["bot"] = lambda: {"up": False, "detail": "restarting"}
    health = await client.get("/healthz")
    body = await health.json()
    assert health.status == 200 and body["status"] == "degraded" and body["down"] == ["bot"]
    ready = await client.get("/readyz")
    assert ready.status == 503 and (await ready.json())["down"] == ["bot"]
    ctx.health_checks["bot"] = lambda: {"up": True}
    assert (await client.get("/readyz")).status == 200


async def test_the_resident_hears_when_their_ticket_moves_on(chat, ctx, staff) -> None:
    client, _ = chat
    ws = await client.ws_connect("/ws/chat?client=resident-0008")
    await _recv(ws, "history")
    await ws.send_json({"type": "message", "id": "m1", "text": "楼道漏水"})
    await _recv(ws, "message")
    conv = await _conversation(ctx)
    from tests.conftest import SERVICE
    created = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "leak", "description": "楼道漏水", "channel": "web",
        "conversation_id": conv.id})
    number = (await created.json())["number"]
    headers = await login(client, "sun.repair")
    await client.post(f"/api/tickets/{number}/assign", json={"assignee": "crew"}, headers=headers)
    notice = await _recv(ws, "message")
    assert notice["sender"] == "system" and number in notice["text"] and "派发" in notice["text"]


async def test_staff_get_a_live_event_stream_filtered_by_role(chat, ctx, staff) -> None:
    client, fake = chat
    assert (await client.get("/ws/events")).status == 401
    await login(client, "agent1")
    agent_ws = await client.ws_connect("/ws/events")
    assert (await agent_ws.receive_json()) == {"type": "hello", "role": "agent", "staff_id": staff["agent1"].id}
    fake.mode = "handoff"
    resident = await client.ws_connect("/ws/chat?client=resident-0009")
    await _recv(resident, "history")
    await resident.send_json({"type": "message", "id": "m1", "text": "转人工"})
    seen = []
    while "conversation.waiting" not in seen:
        seen.append((await asyncio.wait_for(agent_ws.receive_json(), timeout=5))["type"])
    assert seen[:2] == ["conversation.created", "conversation.message"]

    await login(client, "crew")  # department staff: no conversations
    crew_ws = await client.ws_connect("/ws/events")
    assert (await crew_ws.receive_json())["type"] == "hello"
    await resident.send_json({"type": "message", "id": "m2", "text": "还在吗"})
    await _recv(resident, "ack")
    msg = await asyncio.wait_for(agent_ws.receive_json(), timeout=5)
    assert msg["type"] == "conversation.message" and msg["message"]["text"] == "还在吗"
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(crew_ws.receive_json(), timeout=0.5)
