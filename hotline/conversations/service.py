"""The one door for conversations: a resident's message in, replies out, and every status change.

`status` alone decides who answers: the bot in `bot`, a person in `waiting`
and `agent`. Every change goes through one function here that, in one
transaction, writes the change, its audit row (`ConversationEvent`, with the
actor) and any message to the resident, and queues the live event; the
message is delivered on the channel only after the transaction commits, so a
rolled-back change tells no one anything.

A resident's message is committed before anything else happens, so a bot that
is down, slow or failing never loses it: the conversation moves to `waiting`
and an agent sees it.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import BOT, RESIDENT, SYSTEM, Actor
from hotline.callbacks import tasks as callback_tasks
from hotline.channels.base import Delivery
from hotline.context import AppContext
from hotline.errors import Refused
from hotline.events import publish_on_commit
from hotline.incidents import doors as incident_doors
from hotline.rasa.client import BotReply, BotUnavailable
from hotline.tickets.lifecycle import MEDIA_KINDS, attach_media
from models import (
    AgentPresence,
    CallbackTask,
    Conversation,
    ConversationEvent,
    Customer,
    Message,
    Notification,
    Staff,
    Ticket,
)
from models.ticket import OPEN_STATUSES

log = logging.getLogger(__name__)

OPEN = ("bot", "waiting", "agent")
RATING_WINDOW = dt.timedelta(hours=24)
BOT_MAX_CHARS = 2000  # what the bot reads of one message (the web chat's own limit); the rest is stored
# What each sender's outgoing message is called in the audit trail.
OUTGOING_ACTIONS = {"bot": "bot_reply", "agent": "reply", "system": "notice"}


class ConversationError(Refused):
    """Refused by this door; the API answers with its status (hotline/api/middleware.py)."""


@dataclass
class Received:
    conversation_id: int
    message_id: int | None
    duplicate: bool = False


# --- the audit row, the live event, the message: written together -------------------------------

def _live(session: AsyncSession, conv: Conversation, kind: str, **extra: Any) -> None:
    publish_on_commit(session, {"type": kind, "conversation_id": conv.id, "channel": conv.channel,
                                "external_user": conv.external_user, "status": conv.status, **extra})


def _audit(session: AsyncSession, conv: Conversation, actor: Actor, action: str, now: dt.datetime,
           from_status: str | None, data: dict[str, Any] | None = None) -> None:
    session.add(ConversationEvent(conversation_id=conv.id, at=now, action=action, actor_kind=actor.kind,
                                  actor_id=actor.id, actor_name=actor.name, from_status=from_status,
                                  to_status=conv.status, data=data or {}))


def _change(session: AsyncSession, conv: Conversation, actor: Actor, action: str, now: dt.datetime,
            from_status: str | None, live_type: str, data: dict[str, Any] | None = None,
            **live_extra: Any) -> None:
    """A status change: its audit row and its live event."""
    conv.updated_at = now
    _audit(session, conv, actor, action, now, from_status, data)
    _live(session, conv, live_type, **live_extra)


async def _message(session: AsyncSession, conv: Conversation, actor: Actor, action: str, *, direction: str,
                   sender_kind: str, text: str, now: dt.datetime, kind: str = "text",
                   payload: dict[str, Any] | None = None, channel_message_id: str | None = None,
                   sender_id: int | None = None) -> Message:
    """A message in or out: the row, its audit row and its live event."""
    msg = Message(conversation_id=conv.id, channel=conv.channel, channel_message_id=channel_message_id,
                  direction=direction, sender_kind=sender_kind, sender_id=sender_id, kind=kind, text=text,
                  payload=payload or {}, created_at=now)
    session.add(msg)
    conv.updated_at = now
    await session.flush()
    _audit(session, conv, actor, action, now, conv.status, {"message_id": msg.id, "kind": kind})
    _live(session, conv, "conversation.message", message={
        "id": msg.id, "direction": msg.direction, "sender_kind": msg.sender_kind, "kind": msg.kind,
        "text": msg.text, "created_at": msg.created_at.isoformat()})
    return msg


async def _say(session: AsyncSession, conv: Conversation, sender_kind: str, text: str, now: dt.datetime,
               actor: Actor = SYSTEM, sender_id: int | None = None) -> Message:
    return await _message(session, conv, actor, OUTGOING_ACTIONS[sender_kind], direction="out",
                          sender_kind=sender_kind, text=text, now=now, sender_id=sender_id)


async def _deliver(ctx: AppContext, conv: Conversation, messages: list[Message]) -> None:
    """After commit: hand the stored messages to the conversation's channel and record how it went."""
    channel = ctx.channels.get(conv.channel)
    if channel is None:
        return
    for msg in messages:
        await record_delivery(ctx, conv.id, msg, await _hand_over(channel, conv, msg))


async def _hand_over(channel: Any, conv: Conversation, msg: Message) -> Delivery:
    try:
        delivery: Delivery = await channel.deliver(conv, msg)
    except Exception as exc:  # a channel failure is recorded and shown to agents, never raised at the resident
        log.exception("delivery failed on %s", conv.channel)
        delivery = Delivery("failed", str(exc)[:500])
    return delivery


async def _get(session: AsyncSession, conv_id: int) -> Conversation:
    conv = await session.get(Conversation, conv_id)
    if conv is None:
        raise ConversationError(404, "not_found", "no such conversation")
    return conv


# --- a resident's message in ------------------------------------------------------------------------

async def _open_conversation(session: AsyncSession, channel: str, user: str, now: dt.datetime) -> Conversation:
    conv = (await session.execute(select(Conversation).where(
        Conversation.channel == channel, Conversation.external_user == user,
        Conversation.status.in_(OPEN)).order_by(Conversation.id.desc()).limit(1))).scalar_one_or_none()
    if conv is None:
        conv = Conversation(channel=channel, external_user=user, status="bot", created_at=now, updated_at=now)
        session.add(conv)
        await session.flush()
        _change(session, conv, RESIDENT, "create", now, None, "conversation.created")
    return conv


async def _awaiting_rating(session: AsyncSession, channel: str, user: str, now: dt.datetime) -> Conversation | None:
    return (await session.execute(select(Conversation).where(
        Conversation.channel == channel, Conversation.external_user == user, Conversation.status == "closed",
        Conversation.rating_requested_at > now - RATING_WINDOW, Conversation.satisfaction.is_(None))
        .order_by(Conversation.id.desc()).limit(1))).scalar_one_or_none()


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
    outbox: list[Message] = []
    taken = False  # answered here (a rating, a survey answer): not for the bot
    try:
        async with ctx.sessions.begin() as session:
            pending = await _awaiting_rating(session, channel, user, now)
            survey = await callback_tasks.survey_waiting_for(session, channel, user)
            if survey is not None and pending is not None and pending.rating_requested_at \
                    and survey.asked_at and survey.asked_at > pending.rating_requested_at:
                pending = None  # the survey asked last: a digit answers it, not the old rating
            if pending is not None and text.strip() in {"1", "2", "3", "4", "5"}:
                conv = pending
                msg = await _message(session, conv, RESIDENT, "receive", direction="in", sender_kind="resident",
                                     text=text.strip(), now=now, channel_message_id=channel_message_id)
                conv.satisfaction = int(text.strip())
                _change(session, conv, RESIDENT, "rate", now, conv.status, "conversation.rated",
                        {"satisfaction": conv.satisfaction}, satisfaction=conv.satisfaction)
                outbox.append(await _say(session, conv, "system", ctx.messages("conversation.rated"), now))
                taken = True
            else:
                conv = await _open_conversation(session, channel, user, now)
                if remember:
                    conv.slots = {**conv.slots, **remember}
                msg = await _message(session, conv, RESIDENT, "receive", direction="in", sender_kind="resident",
                                     text=text, now=now, kind=kind, payload=payload,
                                     channel_message_id=channel_message_id)
                if kind in MEDIA_KINDS:
                    open_tickets = (await session.execute(select(Ticket).where(
                        Ticket.conversation_id == conv.id, Ticket.status.in_(OPEN_STATUSES)))).scalars().all()
                    for ticket in open_tickets:
                        attach_media(session, ticket, msg, now)
                else:
                    if to_bot:
                        answered, reply = await _survey_reply(ctx, session, conv, survey, text, now)
                        taken = taken or answered
                        outbox += [reply] if reply is not None else []
                    if kind in ("text", "voice") and (words := ctx.watch_words.found(text)):
                        await incident_doors.raise_alert(session, ctx.router, words=words, excerpt=text,
                                                         conversation_id=conv.id, message_id=msg.id, now=now)
                        _audit(session, conv, SYSTEM, "alert", now, conv.status, {"words": words})
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
    await _deliver(ctx, conv, outbox)
    if not taken and status == "bot" and to_bot:
        await ask_bot(ctx, conv_id, text, {**slots, **(metadata or {})})
    return received


async def _survey_reply(ctx: AppContext, session: AsyncSession, conv: Conversation, task: CallbackTask | None,
                        text: str, now: dt.datetime) -> tuple[bool, Message | None]:
    """The callback survey takes a resident's answer before the bot does; anything else goes on to the bot."""
    answer = ctx.survey_words.read(text)
    if answer is None:
        return False, None
    if task is None:
        done = await callback_tasks.recently_answered(session, conv.channel, conv.external_user,
                                                      now - RATING_WINDOW)
        if done is None or answer == "unclear":
            return False, None
        ticket = await session.get(Ticket, done.ticket_id)
        assert ticket is not None
        return True, await _say(session, conv, "system", ctx.messages("callback.already", ticket=ticket.number), now)
    ticket = await session.get(Ticket, task.ticket_id)
    assert ticket is not None
    _audit(session, conv, RESIDENT, "survey_answer", now, conv.status, {"ticket": ticket.number, "answer": answer})
    if answer == "unclear":
        if task.reasks == 0:
            task.reasks, task.asked_at = 1, now
            return True, await _say(session, conv, "system", ctx.messages("callback.ask_again"), now)
        callback_tasks.record_unclear(session, task, ticket.number, now)
        return True, await _say(session, conv, "system", ctx.messages("callback.unclear_recorded"), now)
    await callback_tasks.record_answer(session, ctx.router, task, answer, RESIDENT, now)
    if answer == "dissatisfied":
        return True, None  # the reopen's own notice tells the resident the new date
    return True, await _say(session, conv, "system", ctx.messages("callback.thanks", ticket=ticket.number), now)


# --- the bot ------------------------------------------------------------------------------------------

async def ask_bot(ctx: AppContext, conv_id: int, text: str, metadata: dict[str, Any]) -> None:
    """Send the resident's text to Rasa, in turn with everyone else's.

    Slow is not down: the answer is delivered whenever it comes within the long
    limit (`[bot] timeout_seconds`, the wait in the queue included); only a
    failing bot or one past that limit hands the conversation to a person.
    """
    if len(text) > BOT_MAX_CHARS:
        text = text[:BOT_MAX_CHARS]
        await send(ctx, conv_id, "system", ctx.messages("conversation.cut_for_bot", limit=BOT_MAX_CHARS),
                   only_if_status="bot")
    async with ctx.readers() as session:
        conv = await _get(session, conv_id)
        channel_name, user = conv.channel, conv.external_user
    meta = {"conversation_id": conv_id, "channel": channel_name, **metadata}
    queue = ctx.bot_queue
    if queue.full:
        queue.overflowed += 1
        await send(ctx, conv_id, "system", ctx.messages("conversation.bot_busy"), only_if_status="bot")
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
        await handoff(ctx, conv_id, "bot_unavailable", ctx.messages("conversation.bot_unavailable"))
        return
    finally:
        await _typing(ctx, channel_name, user, False)
    queue.answered += 1
    await _bot_replied(ctx, conv_id, reply)


async def _bot_replied(ctx: AppContext, conv_id: int, reply: BotReply) -> None:
    """The bot's lines, and its request for a person, in one transaction; silent if a person took over meanwhile."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await _get(session, conv_id)
        if conv.status != "bot":
            return
        outbox = [await _say(session, conv, "bot", line, now, actor=BOT) for line in reply.texts]
        if reply.handoff:
            outbox += await _to_queue(session, conv, BOT, reply.handoff_reason or "requested",
                                      None if reply.texts else ctx.messages("conversation.handoff"), now,
                                      category=reply.category, learned=reply.learned)
    await _deliver(ctx, conv, outbox)
    if reply.handoff:
        await assign_waiting(ctx)  # to an agent who is 在线, if any


async def _typing(ctx: AppContext, channel_name: str, user: str, on: bool) -> None:
    """Show the resident that the bot is working on an answer, on channels that can."""
    typing = getattr(ctx.channels.get(channel_name), "typing", None)
    if typing is not None:
        try:
            await typing(user, on)
        except Exception:  # an indicator is never worth failing a reply for
            log.debug("typing indicator failed on %s", channel_name, exc_info=True)


async def _to_queue(session: AsyncSession, conv: Conversation, actor: Actor, reason: str, notice: str | None,
                    now: dt.datetime, category: str | None = None,
                    learned: dict[str, Any] | None = None) -> list[Message]:
    before = conv.status
    conv.status, conv.waiting_since, conv.handoff_reason = "waiting", now, reason
    if category:
        conv.bot_intent = category
    if learned:
        conv.slots = {**conv.slots, "learned": learned}
        if learned.get("account_number") and conv.customer_id is None:
            # The account the bot confirmed: the agent sees whose conversation this is.
            conv.customer_id = (await session.execute(select(Customer.id).where(
                Customer.account_number == str(learned["account_number"])))).scalar_one_or_none()
    _change(session, conv, actor, "handoff", now, before, "conversation.waiting",
            {"reason": reason, "category": category}, reason=reason, bot_intent=conv.bot_intent,
            waiting_since=now.isoformat())
    return [await _say(session, conv, "system", notice, now)] if notice else []


async def handoff(ctx: AppContext, conv_id: int, reason: str, notice: str | None,
                  category: str | None = None, learned: dict[str, Any] | None = None,
                  actor: Actor = SYSTEM) -> None:
    """bot → waiting: the conversation joins the agents' queue, oldest first.

    `learned` (the bot's slots: problem, account, address…) is kept on the
    conversation so the agent's ticket form starts filled in.
    """
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await session.get(Conversation, conv_id)
        if conv is None or conv.status != "bot":
            return
        outbox = await _to_queue(session, conv, actor, reason, notice, now, category, learned)
    await _deliver(ctx, conv, outbox)
    await assign_waiting(ctx)  # to an agent who is 在线, if any


# --- messages out -----------------------------------------------------------------------------------

async def send(ctx: AppContext, conv_id: int, sender_kind: str, text: str, *, sender_id: int | None = None,
               only_if_status: str | None = None, actor: Actor = SYSTEM) -> Message | None:
    """Store an outgoing message, then deliver it on the conversation's channel and record how it went."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await session.get(Conversation, conv_id)
        if conv is None or (only_if_status and conv.status != only_if_status):
            return None  # e.g. an agent took over while the bot was thinking: the bot stays silent
        msg = await _say(session, conv, sender_kind, text, now, actor=actor, sender_id=sender_id)
    await _deliver(ctx, conv, [msg])
    return msg


async def record_delivery(ctx: AppContext, conv_id: int, msg: Message, delivery: Delivery) -> None:
    """How a delivery went; a failure (e.g. WeChat's 48-hour window) is audited and shown to agents."""
    await _record_deliveries(ctx, [(conv_id, msg, delivery)])


async def _record_deliveries(ctx: AppContext, results: list[tuple[int, Message, Delivery]]) -> None:
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        plain: dict[str, list[int]] = {}  # delivered / stored: one UPDATE each, however many messages
        for _, msg, delivery in results:
            if delivery.status != "failed" and delivery.error is None:
                plain.setdefault(delivery.status, []).append(msg.id)
        for status, ids in plain.items():
            await session.execute(update(Message).where(Message.id.in_(ids)).values(
                delivery_status=status, delivery_error=None))
        for conv_id, msg, delivery in results:
            if delivery.status != "failed" and delivery.error is None:
                continue
            await session.execute(update(Message).where(Message.id == msg.id).values(
                delivery_status=delivery.status, delivery_error=delivery.error))
            if delivery.status == "failed":
                conv = await _get(session, conv_id)
                _audit(session, conv, SYSTEM, "delivery_failed", now, conv.status,
                       {"message_id": msg.id, "error": delivery.error})
                _live(session, conv, "conversation.delivery_failed", message_id=msg.id, error=delivery.error)
    for _, msg, delivery in results:
        msg.delivery_status, msg.delivery_error = delivery.status, delivery.error


async def tell_many(ctx: AppContext, notices: list[tuple[int, str]], concurrency: int = 32) -> list[Message]:
    """Many system messages at once (callback surveys, outage notices): stored, audited and published in one
    transaction, delivered concurrently after it commits, and their deliveries recorded in one more."""
    now = ctx.clock()
    stored: list[tuple[Conversation, Message]] = []
    async with ctx.sessions.begin() as session:
        ids = {conv_id for conv_id, _ in notices}
        convs = {c.id: c for c in (await session.execute(
            select(Conversation).where(Conversation.id.in_(ids)))).scalars()}
        for conv_id, text in notices:
            if conv_id in convs:
                conv = convs[conv_id]
                msg = Message(conversation_id=conv.id, channel=conv.channel, direction="out", sender_kind="system",
                              kind="text", text=text, payload={}, created_at=now)
                session.add(msg)
                conv.updated_at = now
                stored.append((conv, msg))
        await session.flush()  # one round trip for all their ids
        for conv, msg in stored:
            _audit(session, conv, SYSTEM, "notice", now, conv.status, {"message_id": msg.id, "kind": "text"})
            _live(session, conv, "conversation.message", message={
                "id": msg.id, "direction": "out", "sender_kind": "system", "kind": "text", "text": msg.text,
                "created_at": now.isoformat()})
    slots = asyncio.Semaphore(concurrency)

    async def deliver(conv: Conversation, msg: Message) -> tuple[int, Message, Delivery] | None:
        channel = ctx.channels.get(conv.channel)
        if channel is None:
            return None
        async with slots:
            return conv.id, msg, await _hand_over(channel, conv, msg)

    done = await asyncio.gather(*(deliver(conv, msg) for conv, msg in stored))
    await _record_deliveries(ctx, [d for d in done if d is not None])
    return [msg for _, msg in stored]


# --- agents -----------------------------------------------------------------------------------------

async def take_over(ctx: AppContext, conv_id: int, agent: Actor) -> None:
    """waiting (or bot) → agent. One conditional UPDATE: when two agents click at once, one wins."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        before = (await session.execute(select(Conversation.status).where(Conversation.id == conv_id))).scalar()
        result = await session.execute(update(Conversation).where(
            Conversation.id == conv_id, Conversation.status.in_(("bot", "waiting")),
            Conversation.agent_id.is_(None)).values(status="agent", agent_id=agent.id, updated_at=now))
        if result.rowcount != 1:  # type: ignore[attr-defined]  # an UPDATE's CursorResult
            conv = await _get(session, conv_id)
            raise ConversationError(409, "taken", "这个会话已由其他客服接待" if conv.status == "agent"
                                    else f"conversation is {conv.status}")
        conv = await _get(session, conv_id)
        await session.refresh(conv)
        _change(session, conv, agent, "take_over", now, before, "conversation.taken",
                agent_id=agent.id, agent_name=agent.name)
        joined = ctx.messages("conversation.agent_joined", name=agent.name)
        notice = await _say(session, conv, "system", joined, now)
    await _deliver(ctx, conv, [notice])


def _check_own(conv: Conversation, agent: Actor) -> None:
    if conv.status != "agent" or (conv.agent_id != agent.id and agent.role not in ("supervisor", "admin")):
        raise ConversationError(409, "not_yours", "take the conversation over first")


def _check_speaker(conv: Conversation, agent: Actor) -> None:
    """Only the conversation's own agent speaks to the resident. A supervisor in another agent's
    conversation whispers to that agent or takes it over (reassign), so the resident always hears
    the one person who was announced to them."""
    if conv.status != "agent" or conv.agent_id != agent.id:
        raise ConversationError(409, "not_yours", "take the conversation over first")


async def agent_reply(ctx: AppContext, conv_id: int, agent: Actor, text: str) -> Message:
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await _get(session, conv_id)
        _check_speaker(conv, agent)
        msg = await _say(session, conv, "agent", text, now, actor=agent, sender_id=agent.id)
    await _deliver(ctx, conv, [msg])
    return msg


async def hand_back(ctx: AppContext, conv_id: int, agent: Actor) -> None:
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await _get(session, conv_id)
        _check_own(conv, agent)
        conv.status, conv.agent_id, conv.waiting_since = "bot", None, None
        _change(session, conv, agent, "hand_back", now, "agent", "conversation.handed_back", agent_id=agent.id)
        notice = await _say(session, conv, "system", ctx.messages("conversation.handed_back"), now)
    await _deliver(ctx, conv, [notice])


CLOSERS = ("supervisor", "admin")  # who may close a conversation they do not serve


def _check_closer(conv: Conversation, actor: Actor) -> None:
    """Staff close only the conversation they serve; a supervisor or an admin closes any. Another agent's
    live chat, a waiting resident and one the bot is serving are not an agent's to end."""
    if not actor.is_staff or actor.role in CLOSERS or (conv.status == "agent" and conv.agent_id == actor.id):
        return
    raise ConversationError(403, "not_serving", "只有接待该会话的坐席、主管或管理员可以结束会话 "
                                                "(only the agent serving this conversation, a supervisor or an "
                                                "admin may close it)")


def _tell_serving_agent(session: AsyncSession, conv: Conversation, actor: Actor, now: dt.datetime) -> None:
    """A supervisor ended an agent's conversation: the agent hears it as a notice, live after commit.
    The live event has no "kind": the metrics count a notice's kind as an escalation step."""
    if conv.status != "agent" or conv.agent_id is None or conv.agent_id == actor.id:
        return
    text = f"{actor.name}结束了您接待的会话 #{conv.id}"
    session.add(Notification(staff_id=conv.agent_id, kind="conversation_closed", message=text, created_at=now))
    publish_on_commit(session, {"type": "notification", "staff_ids": [conv.agent_id], "message": text,
                                "conversation_id": conv.id})


async def close(ctx: AppContext, conv_id: int, actor: Actor) -> None:
    """Any open status → closed; the resident is asked for a rating on the same channel."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await _get(session, conv_id)
        if conv.status == "closed":
            raise ConversationError(409, "closed", "the conversation is closed already")
        _check_closer(conv, actor)
        _tell_serving_agent(session, conv, actor, now)
        before = conv.status
        conv.status, conv.closed_at, conv.rating_requested_at = "closed", now, now
        _change(session, conv, actor, "close", now, before, "conversation.closed", by=actor.name)
        notice = await _say(session, conv, "system", ctx.messages("conversation.rating"), now)
    await _deliver(ctx, conv, [notice])


# --- supervision and presence-based assignment ------------------------------------------------------

WHISPER_MAX_CHARS = 2000


async def whisper(ctx: AppContext, conv_id: int, actor: Actor, text: str) -> ConversationEvent:
    """A note only staff see (督导提示): an audit row and a staff-only live event, never a Message, so it
    cannot reach the resident's channel, the web chat's history or the bot."""
    now = ctx.clock()
    text = text.strip()[:WHISPER_MAX_CHARS]
    if not text:
        raise ConversationError(422, "missing_note", "a whisper needs text")
    async with ctx.sessions.begin() as session:
        conv = await _get(session, conv_id)
        if conv.status == "closed":
            raise ConversationError(409, "closed", "the conversation is closed")
        evt = ConversationEvent(conversation_id=conv.id, at=now, action="whisper", actor_kind=actor.kind,
                                actor_id=actor.id, actor_name=actor.name, from_status=conv.status,
                                to_status=conv.status, data={"text": text, "to_agent_id": conv.agent_id})
        session.add(evt)
        await session.flush()
        # No channel and no external_user on purpose: the resident's channels listen for those.
        publish_on_commit(session, {"type": "conversation.whisper", "conversation_id": conv.id,
                                    "agent_id": conv.agent_id, "whisper": {
                                        "id": evt.id, "text": text, "by": actor.name, "by_id": actor.id,
                                        "at": now.isoformat()}})
    return evt


async def _assign(session: AsyncSession, ctx: AppContext, conv: Conversation, to: Staff, actor: Actor,
                  action: str, now: dt.datetime) -> Message:
    """Give a waiting or served conversation to `to`: the change, its audit row, the live event, and the
    resident told who serves them now."""
    before, from_agent = conv.status, conv.agent_id
    conv.status, conv.agent_id = "agent", to.id
    _change(session, conv, actor, action, now, before, "conversation.reassigned",
            {"from_agent_id": from_agent, "to_agent_id": to.id, "to_agent_name": to.display_name},
            agent_id=to.id, agent_name=to.display_name, from_agent_id=from_agent)
    presence = await session.get(AgentPresence, to.id)
    if presence is not None:
        presence.last_assigned_at = now
    return await _say(session, conv, "system", ctx.messages("conversation.agent_joined", name=to.display_name), now)


async def reassign(ctx: AppContext, conv_id: int, actor: Actor, to_username: str) -> None:
    """A supervisor gives a conversation (waiting or served) to another agent, or takes it over."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        conv = await _get(session, conv_id)
        if conv.status not in ("waiting", "agent", "bot"):
            raise ConversationError(409, "closed", "the conversation is closed")
        to = (await session.execute(select(Staff).where(Staff.username == to_username))).scalar_one_or_none()
        if to is None or not to.active or to.role not in ("agent", "supervisor", "admin"):
            raise ConversationError(422, "unknown_assignee", f"no active agent {to_username!r}")
        if conv.status == "agent" and conv.agent_id == to.id:
            return
        from_agent = conv.agent_id if conv.status == "agent" else None
        notice = await _assign(session, ctx, conv, to, actor, "reassign", now)
        _tell_reassigned(session, conv, actor, from_agent, to, now)
    await _deliver(ctx, conv, [notice])


def _tell_reassigned(session: AsyncSession, conv: Conversation, actor: Actor, from_agent: int | None, to: Staff,
                     now: dt.datetime) -> None:
    """Both agents hear of a reassignment as a notice (kept until read, and live after commit): the one who
    lost the conversation and the one who got it; the supervisor who did it needs none."""
    told = [(from_agent, "conversation_reassigned_away",
             f"{actor.name}已将您接待的会话 #{conv.id} 转给{to.display_name}"),
            (to.id, "conversation_reassigned_to", f"{actor.name}将会话 #{conv.id} 转给您接待")]
    for staff_id, kind, text in told:
        if staff_id is None or staff_id == actor.id:
            continue
        session.add(Notification(staff_id=staff_id, kind=kind, message=text, created_at=now))
        publish_on_commit(session, {"type": "notification", "staff_ids": [staff_id], "message": text,
                                    "conversation_id": conv.id})


async def assign_waiting(ctx: AppContext, limit: int = 20) -> list[tuple[int, int]]:
    """Offer waiting conversations, oldest first, to agents who are 在线: each to the one with the fewest
    open conversations, ties to whoever was given one longest ago (round-robin, as Chatwoot assigns).

    Each assignment is one conditional UPDATE, like take_over: an agent who clicked 接入 at the same moment
    wins or loses cleanly. Returns (conversation id, agent id) pairs. 忙碌 and 离开 agents get nothing.
    """
    done: list[tuple[int, int]] = []
    outbox: list[tuple[Conversation, Message]] = []
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        online = (await session.execute(
            select(Staff, AgentPresence).join(AgentPresence, AgentPresence.staff_id == Staff.id)
            .where(AgentPresence.status == "online", Staff.active, Staff.role.in_(("agent", "supervisor"))))).all()
        if not online:
            return done
        loads = dict((await session.execute(select(Conversation.agent_id, func.count()).where(
            Conversation.status == "agent", Conversation.agent_id.in_([s.id for s, _ in online]))
            .group_by(Conversation.agent_id))).all())
        waiting = (await session.execute(select(Conversation.id).where(Conversation.status == "waiting")
                                         .order_by(Conversation.waiting_since, Conversation.id).limit(limit))
                   ).scalars().all()
        never = dt.datetime.min.replace(tzinfo=dt.UTC)
        for conv_id in waiting:
            staff, presence = min(online, key=lambda row: (
                loads.get(row[0].id, 0), row[1].last_assigned_at or never, row[0].id))
            result = await session.execute(update(Conversation).where(
                Conversation.id == conv_id, Conversation.status == "waiting", Conversation.agent_id.is_(None))
                .values(status="agent", agent_id=staff.id, updated_at=now))
            if result.rowcount != 1:  # type: ignore[attr-defined]  # taken meanwhile
                continue
            conv = await _get(session, conv_id)
            await session.refresh(conv)
            conv.status, conv.agent_id = "waiting", None  # _assign records the change from waiting
            outbox.append((conv, await _assign(session, ctx, conv, staff, SYSTEM, "assign", now)))
            loads[staff.id] = loads.get(staff.id, 0) + 1
            done.append((conv_id, staff.id))
    for conv, msg in outbox:
        await _deliver(ctx, conv, [msg])
    return done
