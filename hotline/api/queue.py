"""The agents' side of conversations: the live queue, a ticket drafted from what the bot
learned, linking a ticket, and the tickets a conversation already has."""
from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from hotline.api.records import conversation_json, message_json
from hotline.api.registry import AGENTS, ApiError, actor_of, ctx_of, json_response, parse_body, path_id, route
from hotline.api.tickets import full_ticket_json
from hotline.tickets import lifecycle
from models import Conversation, Message, Staff, Ticket


class LinkTicket(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    number: str = Field(min_length=1, max_length=32)


@route("GET", "/api/queue", "Waiting conversations oldest first, and the ones being served",
       tag="conversations", roles=AGENTS, errors=(401, 403))
async def queue(request: web.Request) -> web.Response:
    """Agents see their own active conversations; supervisors and admins see everyone's."""
    ctx, actor = ctx_of(request), actor_of(request)
    async with ctx.readers() as session:
        waiting = (await session.execute(select(Conversation).where(Conversation.status == "waiting")
                                         .order_by(Conversation.waiting_since, Conversation.id).limit(500))
                 ).scalars().all()
        active_stmt = select(Conversation, Staff.display_name).outerjoin(Staff, Staff.id == Conversation.agent_id) \
            .where(Conversation.status == "agent").order_by(Conversation.updated_at.desc()).limit(500)
        if actor.role == "agent":
            active_stmt = active_stmt.where(Conversation.agent_id == actor.id)
        active = (await session.execute(active_stmt)).all()
        ids = [c.id for c in waiting] + [c.id for c, _ in active]
        last: dict[int, Message] = {}
        counts: dict[int, int] = {}
        if ids:
            latest = select(func.max(Message.id)).where(Message.conversation_id.in_(ids), Message.direction == "in") \
                .group_by(Message.conversation_id)
            last = {m.conversation_id: m for m in (await session.execute(
                select(Message).where(Message.id.in_(latest)))).scalars()}
            counts = dict((await session.execute(select(Message.conversation_id, func.count()).where(
                Message.conversation_id.in_(ids)).group_by(Message.conversation_id))).all())

    def item(conv: Conversation, agent_name: str | None = None) -> dict[str, Any]:
        data = conversation_json(conv)
        msg = last.get(conv.id)
        data.update(last_resident_message=message_json(msg) if msg else None, message_count=counts.get(conv.id, 0),
                    agent_name=agent_name)
        return data

    return json_response({"waiting": [item(c) for c in waiting],
                          "active": [item(c, name) for c, name in active]})


@route("GET", "/api/conversations/{id}/ticket_draft",
       "A ticket form filled in from what the bot learned (category, business type, account, address)",
       tag="conversations", roles=AGENTS, errors=(401, 403, 404))
async def ticket_draft(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    async with ctx.readers() as session:
        conv = await session.get(Conversation, path_id(request, "conversation"))
        if conv is None:
            raise ApiError(404, "not_found", "no such conversation")
        said = (await session.execute(select(Message.text).where(
            Message.conversation_id == conv.id, Message.direction == "in", Message.kind == "text")
            .order_by(Message.id))).scalars().all()
    learned: dict[str, Any] = conv.slots.get("learned") or {}
    spec = ctx.router.spec
    category = conv.bot_intent if conv.bot_intent in spec.categories else None
    business_type = learned.get("business_type")
    if business_type not in spec.business_types or (
            category and spec.business_types[business_type].category != category):
        business_type = None
    return json_response({
        "conversation_id": conv.id,
        "channel": conv.channel,
        "category": category,
        "business_type": business_type,
        "priority": "urgent" if learned.get("urgent") else None,
        "account_number": learned.get("account_number"),
        "phone": learned.get("phone"),
        "address": learned.get("address") or conv.slots.get("address") or "",
        "latitude": conv.slots.get("latitude"),
        "longitude": conv.slots.get("longitude"),
        "description": learned.get("description") or "；".join(t for t in said if t.strip())[:4000],
        "problem": learned.get("problem"),
    })


@route("GET", "/api/conversations/{id}/tickets", "Tickets created from or linked to a conversation",
       tag="conversations", roles=AGENTS, errors=(401, 403, 404))
async def conversation_tickets(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    async with ctx.readers() as session:
        tickets = (await session.execute(select(Ticket).where(
            Ticket.conversation_id == path_id(request, "conversation")).order_by(Ticket.id))).scalars().all()
        items = [await full_ticket_json(ctx, session, t, actor_of(request)) for t in tickets]
    return json_response({"items": items})


@route("POST", "/api/conversations/{id}/link_ticket", "Link an existing ticket to this conversation",
       tag="conversations", roles=AGENTS, body=LinkTicket, errors=(400, 401, 403, 404, 409, 422))
async def link_ticket(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, LinkTicket)
    conv_id = path_id(request, "conversation")
    async with ctx.sessions.begin() as session:
        if await session.get(Conversation, conv_id) is None:
            raise ApiError(404, "not_found", "no such conversation")
        ticket = await lifecycle.get_ticket(session, body.number, actor, for_update=True)
        await lifecycle.link_conversation(session, ticket, conv_id, actor, ctx.clock())
        data = await full_ticket_json(ctx, session, ticket, actor)
    return json_response(data)
