"""Every conversation change leaves one audit row with its actor and one live event, after commit only;
a notice to the resident goes out only when its change committed."""
from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import create_app
from hotline.channels.base import Delivery
from hotline.conversations import service
from hotline.rasa.client import BotReply
from models import Conversation, Message
from tests.conftest import login


class RecordingChannel:
    """A channel that remembers what it was asked to deliver."""

    name = "web"

    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def deliver(self, conversation: Conversation, message: Message) -> Delivery:
        self.delivered.append(message.text)
        return Delivery("delivered")


class ScriptedBot:
    def __init__(self, *replies: BotReply) -> None:
        self.replies = list(replies)

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any] | None = None) -> BotReply:
        return self.replies.pop(0)

    async def close(self) -> None:
        pass


@pytest.fixture
def channel(ctx) -> RecordingChannel:
    ctx.channels["web"] = RecordingChannel()
    return ctx.channels["web"]


def _live(ctx) -> list[dict[str, Any]]:
    heard: list[dict[str, Any]] = []
    ctx.live.subscribe(heard.append)
    return heard


async def test_every_change_has_one_audit_row_with_its_actor_and_one_live_event(ctx, staff, channel) -> None:
    heard = _live(ctx)
    ctx.bot = ScriptedBot(BotReply(texts=["您好，请问有什么可以帮您？"]),
                          BotReply(texts=[], handoff=True, handoff_reason="requested", category="repair"))
    first = await service.receive(ctx, "web", "resident-trail", "你好")
    await service.receive(ctx, "web", "resident-trail", "转人工")
    conv_id = first.conversation_id
    agent = staff["agent1"]
    await service.take_over(ctx, conv_id, agent)
    await service.agent_reply(ctx, conv_id, agent, "您好，我是客服")
    await service.hand_back(ctx, conv_id, agent)
    await service.close(ctx, conv_id, staff["sup"])  # the bot has it again: a supervisor ends it
    await service.receive(ctx, "web", "resident-trail", "5")

    async with TestClient(TestServer(create_app(ctx))) as client:
        headers = await login(client, "agent1")
        resp = await client.get(f"/api/conversations/{conv_id}/events", headers=headers)
        assert resp.status == 200
        trail = (await resp.json())["items"]
        assert (await client.get("/api/conversations/99999/events", headers=headers)).status == 404
    actions = [(e["action"], e["actor"]["kind"]) for e in trail]
    assert actions == [
        ("create", "resident"), ("receive", "resident"), ("bot_reply", "bot"),
        ("receive", "resident"), ("handoff", "bot"), ("notice", "system"),
        ("take_over", "staff"), ("notice", "system"), ("reply", "staff"),
        ("hand_back", "staff"), ("notice", "system"),
        ("close", "staff"), ("notice", "system"),
        ("receive", "resident"), ("rate", "resident"), ("notice", "system")]
    take_over = next(e for e in trail if e["action"] == "take_over")
    assert take_over["actor"]["name"] == agent.name and (take_over["from_status"], take_over["to_status"]) == (
        "waiting", "agent")
    assert all(e["at"] for e in trail)
    assert next(e for e in trail if e["action"] == "handoff")["data"]["reason"] == "requested"
    # One live event per change: state changes by their own type, every message as conversation.message.
    kinds = [e["type"] for e in heard if e.get("conversation_id") == conv_id]
    assert kinds.count("conversation.message") == sum(a in ("receive", "bot_reply", "notice", "reply")
                                                      for a, _ in actions)
    for change, kind in (("create", "conversation.created"), ("handoff", "conversation.waiting"),
                         ("take_over", "conversation.taken"), ("hand_back", "conversation.handed_back"),
                         ("close", "conversation.closed"), ("rate", "conversation.rated")):
        assert kinds.count(kind) == 1 == [a for a, _ in actions].count(change)
    assert channel.delivered[0] == "您好，请问有什么可以帮您？" and channel.delivered[-1] == "感谢您的评价！"


async def test_a_change_that_rolls_back_leaves_no_trail_no_live_event_and_tells_the_resident_nothing(
        ctx, staff, channel, monkeypatch) -> None:
    ctx.bot = ScriptedBot(BotReply(texts=[], handoff=True, handoff_reason="requested"))
    conv_id = (await service.receive(ctx, "web", "resident-rollback", "转人工")).conversation_id
    delivered_before = list(channel.delivered)
    heard = _live(ctx)
    real_say = service._say

    async def failing_say(session, conv, sender_kind, text, now, **kwargs):  # the notice's write fails
        if "已接入" in text:
            raise RuntimeError("disk full")
        return await real_say(session, conv, sender_kind, text, now, **kwargs)

    monkeypatch.setattr(service, "_say", failing_say)
    with pytest.raises(RuntimeError):
        await service.take_over(ctx, conv_id, staff["agent1"])
    assert heard == [] and channel.delivered == delivered_before
    async with ctx.readers() as session:
        conv = await session.get(Conversation, conv_id)
        from sqlalchemy import select

        from models import ConversationEvent
        actions = (await session.execute(select(ConversationEvent.action).where(
            ConversationEvent.conversation_id == conv_id))).scalars().all()
    assert conv.status == "waiting" and conv.agent_id is None and "take_over" not in actions


async def test_the_account_the_bot_learned_tells_whose_conversation_it_is(ctx, channel) -> None:
    from models import Customer
    async with ctx.sessions.begin() as session:
        customer = Customer(account_number="3100000077", name="王芳", address="建设路7号", area="城东片区",
                            meter_model="LXS-20E", meter_size_dn=20, meter_serial="M77")
        session.add(customer)
    ctx.bot = ScriptedBot(BotReply(texts=["好的，正在为您转接人工客服。"], handoff=True, handoff_reason="requested",
                                   category="billing", learned={"account_number": "3100000077"}))
    conv_id = (await service.receive(ctx, "web", "resident-account", "我的户号3100000077，转人工")).conversation_id
    async with ctx.readers() as session:
        conv = await session.get(Conversation, conv_id)
    assert conv.customer_id == customer.id and conv.status == "waiting"
