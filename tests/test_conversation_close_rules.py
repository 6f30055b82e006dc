"""Who may end a conversation: the agent serving it, or a supervisor or an admin; never another agent, and
never an agent while the bot or the queue has it. The serving agent hears when a supervisor ends theirs."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from hotline.auth.staff import upsert_staff
from hotline.channels.base import Delivery
from hotline.conversations import service
from models import Conversation, Message
from tests.conftest import PASSWORD, login


class RecordingChannel:
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


async def _agent2(ctx) -> None:
    async with ctx.sessions.begin() as session:
        await upsert_staff(session, "agent2", PASSWORD, "agent", "agent2", "customer_service")


async def _served_by(ctx, staff, who: str, user: str) -> int:
    conv_id = (await service.receive(ctx, "web", user, "我要投诉，三天没水了", to_bot=False)).conversation_id
    await service.handoff(ctx, conv_id, "requested", None, category="complaint")
    await service.take_over(ctx, conv_id, staff[who])
    return conv_id


async def _status(ctx, conv_id: int) -> str:
    async with ctx.readers() as session:
        return (await session.get(Conversation, conv_id)).status


async def test_another_agent_may_not_close_a_live_chat_nor_one_the_bot_or_the_queue_has(
        client: TestClient, ctx, staff, channel) -> None:
    await _agent2(ctx)
    complaint = await _served_by(ctx, staff, "agent1", "resident-complaint")
    with_bot = (await service.receive(ctx, "web", "resident-bot", "你好", to_bot=False)).conversation_id
    waiting = (await service.receive(ctx, "web", "resident-waiting", "转人工", to_bot=False)).conversation_id
    await service.handoff(ctx, waiting, "requested", None)
    headers = await login(client, "agent2")
    for conv_id, status in ((complaint, "agent"), (with_bot, "bot"), (waiting, "waiting")):
        resp = await client.post(f"/api/conversations/{conv_id}/close", headers=headers)
        assert resp.status == 403, status
        error = (await resp.json())["error"]
        assert error["code"] == "not_serving" and "只有接待该会话的坐席" in error["message"]
        assert await _status(ctx, conv_id) == status  # untouched
    assert not any("打分" in text for text in channel.delivered)  # no resident was asked for a rating
    # The serving agent ends their own.
    headers = await login(client, "agent1")
    assert (await client.post(f"/api/conversations/{complaint}/close", headers=headers)).status == 200
    assert await _status(ctx, complaint) == "closed"


async def test_a_supervisor_closes_an_agents_conversation_and_the_agent_is_told(
        client: TestClient, ctx, staff, channel) -> None:
    conv_id = await _served_by(ctx, staff, "agent1", "resident-sup-close")
    await login(client, "agent1")
    events: list[dict[str, Any]] = []
    async with client.ws_connect("/ws/events") as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        headers = await login(client, "sup")  # the socket keeps agent1's sign-in
        resp = await client.post(f"/api/conversations/{conv_id}/close", headers=headers)
        assert resp.status == 200
        while not any(e["type"] == "notification" for e in events):
            events.append(await asyncio.wait_for(ws.receive_json(), timeout=5))
    notice = next(e for e in events if e["type"] == "notification")
    assert notice["staff_ids"] == [staff["agent1"].id] and notice["conversation_id"] == conv_id
    assert notice["message"] == f"sup结束了您接待的会话 #{conv_id}"
    assert await _status(ctx, conv_id) == "closed"
    # Kept as a notice until read, like the escalation notices.
    await login(client, "agent1")
    kept = (await (await client.get("/api/notifications")).json())["items"]
    assert [(n["kind"], n["message"]) for n in kept] == [("conversation_closed", notice["message"])]
    # The supervisor's own notices are untouched, and an admin may close a conversation the bot has.
    await login(client, "sup")
    assert (await (await client.get("/api/notifications")).json())["items"] == []
    with_bot = (await service.receive(ctx, "web", "resident-admin", "你好", to_bot=False)).conversation_id
    headers = await login(client, "admin")
    assert (await client.post(f"/api/conversations/{with_bot}/close", headers=headers)).status == 200
