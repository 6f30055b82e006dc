"""The one door for conversations: a resident's message in, replies out, and every status change.

`status` alone decides who answers: the bot in `bot`, a person in `waiting`
and `agent`. A resident's message is committed before anything else happens,
so a bot that is down, slow or failing never loses it: the conversation moves
to `waiting` and an agent sees it.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import Actor
from hotline.bot.client import BotUnavailable
from hotline.channels.base import Delivery
from hotline.context import AppContext
from hotline.events import publish_on_commit
from hotline.tickets.lifecycle import MEDIA_KINDS, attach_media
from models import Conversation, Message, Ticket
from models.ticket import OPEN_STATUSES

log = logging.getLogger(__name__)

OPEN = ("bot", "waiting", "agent")
RATING_WINDOW = dt.timedelta(hours=24)
BOT_MAX_CHARS = 2000  # what the bot reads of one message (the web chat's own limit); the rest is stored
TEXTS = {
    "handoff": "正在为您转接人工客服，请稍候，您的消息都已记录。",
    "bot_unavailable": "智能客服暂时无法回复，已为您转接人工客服，请稍候，您的消息都已记录。",
    "bot_busy": "当前咨询人数较多，智能客服正在逐条回复，请稍候，无需重复发送。",
    "cut_for_bot": "您的消息较长，智能客服只阅读了前2000字；完整内容已保存，人工客服可以查看。",
    "agent_joined": "人工客服{name}已接入，为您服务。",
    "handed_back": "人工客服已结束接待，您可以继续向智能客服提问。",
    "rating": "本次服务已结束。请为我们的服务打分：回复数字 1-5（5 表示非常满意）。",
    "rated": "感谢您的评价！",
}


class ConversationError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Received:
    conversation_id: int
    message_id: int | None
    duplicate: bool = False


def _event(session: AsyncSession, conv: Conversation, kind: str, **extra: Any) -> None:
    publish_on_commit(session, {"type": kind, "conversation_id": conv.id, "channel": conv.channel,
                                "external_user": conv.external_user, "status": conv.status, **extra})


def _message_event(session: AsyncSession, conv: Conversation, msg: Message) -> None:
    _event(session, conv, "conversation.message", message={
        "id": msg.id, "direction": msg.direction, "sender_kind": msg.sender_kind, "kind": msg.kind,
        "text": msg.text, "created_at": msg.created_at.isoformat()})


async def _open_conversation(session: AsyncSession, channel: str, user: str, now: dt.datetime) -> Conversation:
    conv = (await session.execute(select(Conversation).where(
        Conversation.channel == channel, Conversation.external_user == user,
        Conversation.status.in_(OPEN)).order_by(Conversation.id.desc()).limit(1))).scalar_one_or_none()
    if conv is None:
        conv = Conversation(channel=channel, external_user=user, status="bot", created_at=now, updated_at=now)
        session.add(conv)
        await session.flush()
        _event(session, conv, "conversation.created")
    return conv


async def _awaiting_rating(session: AsyncSession, channel: str, user: str, now: dt.datetime) -> Conversation | None:
    return (await session.execute(select(Conversation).where(
        Conversation.channel == channel, Conversation.external_user == user, Conversation.status == "closed",
        Conversation.rating_requested_at > now - RATING_WINDOW, Conversation.satisfaction.is_(None))
        .order_by(Conversation.id.desc()).limit(1))).scalar_one_or_none()


def _store(session: AsyncSession, conv: Conversation, *, direction: str, sender_kind: str, text: str,
           now: dt.datetime, kind: str = "text", payload: dict[str, Any] | None = None,
           channel_message_id: str | None = None, sender_id: int | None = None) -> Message:
    msg = Message(conversation_id=conv.id, channel=conv.channel, channel_message_id=channel_message_id,
                  direction=direction, sender_kind=sender_kind, sender_id=sender_id, kind=kind, text=text,
                  payload=payload or {}, created_at=now)
    session.add(msg)
    conv.updated_at = now
    return msg


async def receive(ctx: AppContext, channel: str, user: str, text: str, *, kind: str = "text",
                  payload: dict[str, Any] | None = None, channel_message_id: str | None = None,
                  metadata: dict[str, Any] | None = None, remember: dict[str, Any] | None = None,
                  to_bot: bool = True,
                  on_stored: Callable[[Received], Awaitable[None]] | None = None) -> Received:
    """Store a resident's message, then let whoever owns the conversation answer.

    `remember` is kept on the conversation (e.g. a WeChat location) and sent to
    the bot with every later message; `to_bot=False` stores without asking it.
    `on_stored` runs once the message is committed, before the bot is asked
    (the web chat acknowledges there, so a slow bot never delays the receipt).
    """
    now = ctx.clock()
    rated: Conversation | None = None
    try:
        async with ctx.sessions.begin() as session:
            pending = await _awaiting_rating(session, channel, user, now)
            if pending is not None and text.strip() in {"1", "2", "3", "4", "5"}:
                msg = _store(session, pending, direction="in", sender_kind="resident", text=text.strip(), now=now,
                             channel_message_id=channel_message_id)
                pending.satisfaction = int(text.strip())
                await session.flush()
                _message_event(session, pending, msg)
                _event(session, pending, "conversation.rated", satisfaction=pending.satisfaction)
                rated, conv = pending, pending
            else:
                conv = await _open_conversation(session, channel, user, now)
                if remember:
                    conv.slots = {**conv.slots, **remember}
                msg = _store(session, conv, direction="in", sender_kind="resident", text=text, now=now, kind=kind,
                             payload=payload, channel_message_id=channel_message_id)
                await session.flush()
                if kind in MEDIA_KINDS:
                    open_tickets = (await session.execute(select(Ticket).where(
                        Ticket.conversation_id == conv.id, Ticket.status.in_(OPEN_STATUSES)))).scalars().all()
                    for ticket in open_tickets:
                        attach_media(session, ticket, msg, now)
                _message_event(session, conv, msg)
            status, conv_id, msg_id = conv.status, conv.id, msg.id
            slots = {k: v for k, v in conv.slots.items() if k != "learned"}  # what the channel knows, for the bot
    except IntegrityError:
        # The channel's message id was stored already: a retried push (WeChat retries three times).
        async with ctx.readers() as session:
            found = (await session.execute(select(Message.conversation_id, Message.id).where(
                Message.channel == channel, Message.channel_message_id == channel_message_id))).first()
        if found is None:
            raise
        return Received(found[0], found[1], duplicate=True)
    received = Received(conv_id, msg_id)
    if on_stored is not None:
        try:
            await on_stored(received)
        except Exception:  # e.g. the resident's socket closed: the message is stored and still answered
            log.info("could not acknowledge message %s", msg_id, exc_info=True)
    if rated is not None:
        await send(ctx, conv_id, "system", TEXTS["rated"])
    elif status == "bot" and to_bot:
        await ask_bot(ctx, conv_id, text, {**slots, **(metadata or {})})
    return received


async def ask_bot(ctx: AppContext, conv_id: int, text: str, metadata: dict[str, Any]) -> None:
    """Send the resident's text to Rasa, in turn with everyone else's.

    Slow is not down: the answer is delivered whenever it comes within the long
    limit (`[bot] timeout_seconds`, the wait in the queue included); only a
    failing bot or one past that limit hands the conversation to a person.
    """
    if len(text) > BOT_MAX_CHARS:
        text = text[:BOT_MAX_CHARS]
        await send(ctx, conv_id, "system", TEXTS["cut_for_bot"], only_if_status="bot")
    async with ctx.readers() as session:
        conv = await session.get(Conversation, conv_id)
        assert conv is not None
        channel_name, user = conv.channel, conv.external_user
    meta = {"conversation_id": conv_id, "channel": channel_name, **metadata}
    queue = ctx.bot_queue
    if queue.full:
        queue.overflowed += 1
        await send(ctx, conv_id, "system", TEXTS["bot_busy"], only_if_status="bot")
    await _typing(ctx, channel_name, user, True)
    try:
        if ctx.bot is None:
            raise BotUnavailable("no bot configured")
        async with asyncio.timeout(ctx.config.bot.timeout_seconds):
            async with queue.turn():
                reply = await ctx.bot.send(f"{meta['channel']}-{conv_id}", text, meta)
    except (BotUnavailable, TimeoutError) as exc:
        queue.failed += 1
        log.warning("bot unavailable for conversation %d: %s", conv_id, str(exc) or "past the long limit")
        await handoff(ctx, conv_id, "bot_unavailable", TEXTS["bot_unavailable"])
        return
    finally:
        await _typing(ctx, channel_name, user, False)
    queue.answered += 1
    for line in reply.texts:
        await send(ctx, conv_id, "bot", line, only_if_status="bot")
    if reply.handoff:
        await handoff(ctx, conv_id, reply.handoff_reason or "requested",
                      None if reply.texts else TEXTS["handoff"], category=reply.category, learned=reply.learned)


async def _typing(ctx: AppContext, channel_name: str, user: str, on: bool) -> None:
    """Show the resident that the bot is working on an answer, on channels that can."""
    typing = getattr(ctx.channels.get(channel_name), "typing", None)
    if typing is not None:
        try:
            await typing(user, on)
        except Exception:  # an indicator is never worth failing a reply for
            log.debug("typing indicator failed on %s", channel_name, exc_info=True)


async def handoff(ctx: AppContext, conv_id: int, reason: str, notice: str | None,
                  category: str | None = None, learned: dict[str, Any] | None = None) -> None:
    """bot → waiting: the conversation joins the agents' queue, oldest first.

    `learned` (the bot's slots: problem, account, address…) is kept on the
    conversation so the agent's ticket form starts filled in.
    """
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await session.get(Conversation, conv_id)
        if conv is None or conv.status != "bot":
            return
        conv.status, conv.waiting_since, conv.handoff_reason, conv.updated_at = "waiting", now, reason, now
        if category:
            conv.bot_intent = category
        if learned:
            conv.slots = {**conv.slots, "learned": learned}
        _event(session, conv, "conversation.waiting", reason=reason, bot_intent=conv.bot_intent,
               waiting_since=now.isoformat())
    if notice:
        await send(ctx, conv_id, "system", notice)


async def send(ctx: AppContext, conv_id: int, sender_kind: str, text: str, *, sender_id: int | None = None,
               only_if_status: str | None = None) -> Message | None:
    """Store an outgoing message, then deliver it on the conversation's channel and record how it went."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await session.get(Conversation, conv_id)
        if conv is None or (only_if_status and conv.status != only_if_status):
            return None  # e.g. an agent took over while the bot was thinking: the bot stays silent
        msg = _store(session, conv, direction="out", sender_kind=sender_kind, text=text, now=now,
                     sender_id=sender_id)
        await session.flush()
        _message_event(session, conv, msg)
    channel = ctx.channels.get(conv.channel)
    if channel is None:
        return msg
    try:
        delivery = await channel.deliver(conv, msg)
    except Exception as exc:  # a channel failure is recorded and shown to agents, never raised at the resident
        log.exception("delivery failed on %s", conv.channel)
        delivery = Delivery("failed", str(exc)[:500])
    await record_delivery(ctx, conv_id, msg, delivery)
    return msg


async def record_delivery(ctx: AppContext, conv_id: int, msg: Message, delivery: Delivery) -> None:
    """How a delivery went; failures (e.g. WeChat's 48-hour window) become an event agents see."""
    async with ctx.sessions.begin() as session:
        await session.execute(update(Message).where(Message.id == msg.id).values(
            delivery_status=delivery.status, delivery_error=delivery.error))
        if delivery.status == "failed":
            conv = await session.get(Conversation, conv_id)
            assert conv is not None
            _event(session, conv, "conversation.delivery_failed", message_id=msg.id, error=delivery.error)
    msg.delivery_status, msg.delivery_error = delivery.status, delivery.error


async def take_over(ctx: AppContext, conv_id: int, agent: Actor) -> None:
    """waiting (or bot) → agent. One conditional UPDATE: when two agents click at once, one wins."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        result = await session.execute(update(Conversation).where(
            Conversation.id == conv_id, Conversation.status.in_(("bot", "waiting")),
            Conversation.agent_id.is_(None)).values(status="agent", agent_id=agent.id, updated_at=now))
        if result.rowcount != 1:
            conv = await session.get(Conversation, conv_id)
            if conv is None:
                raise ConversationError(404, "not_found", "no such conversation")
            raise ConversationError(409, "taken", "这个会话已由其他客服接待" if conv.status == "agent"
                                    else f"conversation is {conv.status}")
        conv = await session.get(Conversation, conv_id)
        assert conv is not None
        await session.refresh(conv)
        _event(session, conv, "conversation.taken", agent_id=agent.id, agent_name=agent.name)
    await send(ctx, conv_id, "system", TEXTS["agent_joined"].format(name=agent.name))


async def _own(session: AsyncSession, conv_id: int, agent: Actor) -> Conversation:
    conv = await session.get(Conversation, conv_id)
    if conv is None:
        raise ConversationError(404, "not_found", "no such conversation")
    if conv.status != "agent" or (conv.agent_id != agent.id and agent.role not in ("supervisor", "admin")):
        raise ConversationError(409, "not_yours", "take the conversation over first")
    return conv


async def agent_reply(ctx: AppContext, conv_id: int, agent: Actor, text: str) -> Message | None:
    async with ctx.readers() as session:
        await _own(session, conv_id, agent)
    return await send(ctx, conv_id, "agent", text, sender_id=agent.id, only_if_status="agent")


async def hand_back(ctx: AppContext, conv_id: int, agent: Actor) -> None:
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await _own(session, conv_id, agent)
        conv.status, conv.agent_id, conv.waiting_since, conv.updated_at = "bot", None, None, now
        _event(session, conv, "conversation.handed_back", agent_id=agent.id)
    await send(ctx, conv_id, "system", TEXTS["handed_back"])


async def close(ctx: AppContext, conv_id: int, actor: Actor) -> None:
    """Any open status → closed; the resident is asked for a rating on the same channel."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await session.get(Conversation, conv_id)
        if conv is None:
            raise ConversationError(404, "not_found", "no such conversation")
        if conv.status == "closed":
            raise ConversationError(409, "closed", "the conversation is closed already")
        conv.status, conv.closed_at, conv.rating_requested_at, conv.updated_at = "closed", now, now, now
        _event(session, conv, "conversation.closed", by=actor.name)
    await send(ctx, conv_id, "system", TEXTS["rating"])
