"""Read views over what the channels record: conversations, messages, calls, notices.

Reads of a resident's data are recorded in the read audit before they are answered: one conversation
with its messages, the call list (each resident in it), a recording, and a conversation search (q). The
unfiltered conversation list is the agents' work queue, reloaded on every change, and is not recorded."""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import or_, select, update

from hotline.api.lookup import conversation_conditions, read_needle
from hotline.api.registry import (
    AGENTS,
    ALL_STAFF,
    ApiError,
    ChannelName,
    actor_of,
    ctx_of,
    json_response,
    parse_query,
    path_id,
    route,
)
from hotline.audit.reads import audit_reads, endpoint_of
from hotline.audit.subjects import of_call, of_conversation
from hotline.ivr.call_records import OUTBOUND_OUTCOMES
from hotline.ivr.vocabulary import CALL_OUTCOMES
from models import Call, Conversation, ConversationEvent, Customer, Message, Notification, Staff, Ticket

ALL_CALL_OUTCOMES = CALL_OUTCOMES + tuple(o for o in OUTBOUND_OUTCOMES if o not in CALL_OUTCOMES)


def _call_outcome(value: str) -> str:
    if value not in ALL_CALL_OUTCOMES:
        raise ValueError(f"unknown outcome {value!r}; expected one of {', '.join(ALL_CALL_OUTCOMES)}")
    return value


CallOutcome = Annotated[str, AfterValidator(_call_outcome),
                        Field(json_schema_extra={"enum": list(ALL_CALL_OUTCOMES)})]
CONTACT_ROLES = AGENTS | {"service"}


class ConversationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["bot", "waiting", "agent", "closed"] | None = None
    channel: ChannelName | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before_id: int | None = None
    # The history view's filters (会话记录): who served it, when it began (Beijing dates), its rating, and
    # one search text (户号, phone, ticket number, or words the resident or agent wrote).
    agent: str | None = Field(default=None, max_length=64, description="username of the agent who served it")
    since: dt.date | None = Field(default=None, description="created on or after this day (Beijing time)")
    until: dt.date | None = Field(default=None, description="created on or before this day (Beijing time)")
    rating: int | None = Field(default=None, ge=0, le=5, description="1-5, or 0 for not rated")
    q: str | None = Field(default=None, min_length=1, max_length=100)


class CallQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    caller: str | None = None
    callee: str | None = None
    outcome: CallOutcome | None = None
    direction: Literal["inbound", "outbound"] | None = None
    purpose: Literal["callback", "outage_notice"] | None = None
    limit: int = Field(default=50, ge=1, le=200)
    before_id: int | None = None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def conversation_json(c: Conversation) -> dict[str, Any]:
    return {"id": c.id, "channel": c.channel, "external_user": c.external_user, "status": c.status,
            "agent_id": c.agent_id, "customer_id": c.customer_id, "bot_intent": c.bot_intent, "slots": c.slots,
            "created_at": _iso(c.created_at), "updated_at": _iso(c.updated_at),
            "waiting_since": _iso(c.waiting_since), "closed_at": _iso(c.closed_at),
            "handoff_reason": c.handoff_reason,
            "satisfaction": c.satisfaction}


def message_json(m: Message) -> dict[str, Any]:
    return {"id": m.id, "direction": m.direction, "sender_kind": m.sender_kind, "kind": m.kind,
            "text": m.text, "payload": m.payload, "created_at": _iso(m.created_at),
            "delivery_status": m.delivery_status, "delivery_error": m.delivery_error}


@route("GET", "/api/conversations", "List conversations, newest first", tag="conversations",
       query=ConversationQuery, roles=CONTACT_ROLES, errors=(401, 403, 422))
async def list_conversations(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, ConversationQuery)
    stmt = select(Conversation).order_by(Conversation.id.desc()).limit(query.limit)
    if query.status:
        stmt = stmt.where(Conversation.status == query.status)
    if query.channel:
        stmt = stmt.where(Conversation.channel == query.channel)
    if query.before_id:
        stmt = stmt.where(Conversation.id < query.before_id)
    async with ctx.readers() as session:
        stmt = await history_filters(ctx, session, stmt, query)
        found = (await session.execute(stmt)).scalars().all()
        names = await staff_names(session, {c.agent_id for c in found if c.agent_id})
        accounts = await account_numbers(session, {c.customer_id for c in found if c.customer_id}) \
            if query.q else {}
    if query.q:  # a lookup of a resident, not the work queue
        await audit_reads(ctx, actor_of(request), endpoint_of(request),
                          [of_conversation(c, accounts.get(c.customer_id or 0)) for c in found])
    return json_response({"items": [{**conversation_json(c), "agent_name": names.get(c.agent_id or 0)}
                                    for c in found],
                          "next_before_id": found[-1].id if len(found) == query.limit else None})


async def history_filters(ctx: Any, session: Any, stmt: Any, query: ConversationQuery) -> Any:
    """The history view's filters on a conversation query."""
    tz = ctx.router.calendar.timezone
    if query.agent:
        stmt = stmt.where(Conversation.agent_id.in_(select(Staff.id).where(Staff.username == query.agent)))
    if query.since:
        stmt = stmt.where(Conversation.created_at >= dt.datetime.combine(query.since, dt.time(), tz))
    if query.until:
        stmt = stmt.where(Conversation.created_at < dt.datetime.combine(query.until + dt.timedelta(days=1),
                                                                        dt.time(), tz))
    if query.rating == 0:
        stmt = stmt.where(Conversation.satisfaction.is_(None))
    elif query.rating:
        stmt = stmt.where(Conversation.satisfaction == query.rating)
    if query.q:
        needle = await read_needle(session, query.q)
        stmt = stmt.where(or_(*conversation_conditions(needle)))
    return stmt


async def account_numbers(session: Any, customer_ids: set[int]) -> dict[int, str]:
    if not customer_ids:
        return {}
    return dict((await session.execute(select(Customer.id, Customer.account_number).where(
        Customer.id.in_(customer_ids)))).all())


async def staff_names(session: Any, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict((await session.execute(select(Staff.id, Staff.display_name).where(Staff.id.in_(ids)))).all())


@route("GET", "/api/conversations/{id}", "One conversation with its messages", tag="conversations",
       roles=CONTACT_ROLES, errors=(401, 403, 404))
async def get_conversation(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    conversation_id = path_id(request, "conversation")
    async with ctx.readers() as session:
        conv = await session.get(Conversation, conversation_id)
        if conv is None:
            raise ApiError(404, "not_found", "no such conversation")
        messages = (await session.execute(select(Message).where(Message.conversation_id == conv.id)
                                          .order_by(Message.id))).scalars().all()
        # For staff only: who spoke (every agent's name) and the whispers (notes the resident never sees).
        names = await staff_names(session, {m.sender_id for m in messages if m.sender_id} |
                                  ({conv.agent_id} if conv.agent_id else set()))
        whispers = (await session.execute(select(ConversationEvent).where(
            ConversationEvent.conversation_id == conv.id, ConversationEvent.action == "whisper")
            .order_by(ConversationEvent.id))).scalars().all()
        account = (await account_numbers(session, {conv.customer_id})).get(conv.customer_id) \
            if conv.customer_id else None
    await audit_reads(ctx, actor_of(request), endpoint_of(request), [of_conversation(conv, account, with_id=True)])
    data = conversation_json(conv)
    data["messages"] = [{**message_json(m), "sender_name": names.get(m.sender_id or 0)} for m in messages]
    data["agent_name"] = names.get(conv.agent_id or 0)
    data["whispers"] = [{"id": w.id, "text": w.data.get("text", ""), "by": w.actor_name, "by_id": w.actor_id,
                         "at": w.at.isoformat()} for w in whispers]
    return json_response(data)


def conversation_event_json(e: ConversationEvent) -> dict[str, Any]:
    return {"id": e.id, "action": e.action, "at": e.at.isoformat(),
            "actor": {"kind": e.actor_kind, "id": e.actor_id, "name": e.actor_name},
            "from_status": e.from_status, "to_status": e.to_status, "data": e.data}


@route("GET", "/api/conversations/{id}/events", "A conversation's audit trail, oldest first",
       tag="conversations", roles=CONTACT_ROLES, errors=(401, 403, 404))
async def conversation_events(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    conversation_id = path_id(request, "conversation")
    async with ctx.readers() as session:
        if await session.get(Conversation, conversation_id) is None:
            raise ApiError(404, "not_found", "no such conversation")
        events = (await session.execute(select(ConversationEvent).where(
            ConversationEvent.conversation_id == conversation_id).order_by(ConversationEvent.id))).scalars().all()
    return json_response({"items": [conversation_event_json(e) for e in events]})


@route("GET", "/api/calls", "Call records, inbound (IVR) and outbound (dialler), newest first", tag="calls",
       query=CallQuery,
       roles=CONTACT_ROLES, errors=(401, 403, 422))
async def list_calls(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, CallQuery)
    stmt = (select(Call, Ticket.number).outerjoin(Ticket, Ticket.id == Call.ticket_id)
            .order_by(Call.id.desc()).limit(query.limit))
    if query.caller:
        stmt = stmt.where(Call.caller == query.caller)
    if query.callee:
        stmt = stmt.where(Call.callee == query.callee)
    if query.outcome:
        stmt = stmt.where(Call.outcome == query.outcome)
    if query.direction:
        stmt = stmt.where(Call.direction == query.direction)
    if query.purpose:
        stmt = stmt.where(Call.purpose == query.purpose)
    if query.before_id:
        stmt = stmt.where(Call.id < query.before_id)
    async with ctx.readers() as session:
        rows = (await session.execute(stmt)).all()
    await audit_reads(ctx, actor_of(request), endpoint_of(request), [of_call(c) for c, _ in rows])
    return json_response({"items": [
        {"id": c.id, "sip_call_id": c.sip_call_id, "caller": c.caller, "callee": c.callee,
         "started_at": _iso(c.started_at), "answered_at": _iso(c.answered_at), "ended_at": _iso(c.ended_at),
         "menu_path": c.menu_path, "digits": c.digits, "account_number": c.account_number,
         "outcome": c.outcome, "ticket_number": number, "direction": c.direction, "purpose": c.purpose,
         "outage_id": c.outage_id, "callback_task_id": c.callback_task_id, "sip_status": c.sip_status,
         "recording_url": f"/api/calls/{c.id}/recording" if c.recording_path else None}
        for c, number in rows]})


@route("GET", "/api/calls/{id}/recording", "The call's voicemail recording (audio/wav)", tag="calls",
       roles=AGENTS, errors=(401, 403, 404))
async def call_recording(request: web.Request) -> web.StreamResponse:
    """Recordings live under <var_dir>/recordings; a stored path outside it is never served."""
    ctx = ctx_of(request)
    call_id = path_id(request, "call")
    async with ctx.readers() as session:
        call = await session.get(Call, call_id)
    if call is None or not call.recording_path:
        raise ApiError(404, "not_found", "this call has no recording")
    root = (ctx.config.var_dir / "recordings").resolve()
    path = (ctx.config.var_dir / call.recording_path).resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise ApiError(404, "not_found", "the recording file is missing")
    await audit_reads(ctx, actor_of(request), endpoint_of(request), [of_call(call, with_id=True)])
    return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, max-age=3600"})


@route("GET", "/api/notifications", "My unread escalation notices (督办), newest first",
       tag="notifications", roles=ALL_STAFF, errors=(401,))
async def my_notifications(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    async with ctx.readers() as session:
        rows = (await session.execute(
            select(Notification, Ticket.number).outerjoin(Ticket, Ticket.id == Notification.ticket_id)
            .where(Notification.staff_id == actor.id, Notification.read_at.is_(None))
            .order_by(Notification.id.desc()).limit(200))).all()
    return json_response({"items": [
        {"id": n.id, "kind": n.kind, "message": n.message, "ticket": number, "created_at": _iso(n.created_at)}
        for n, number in rows]})


@route("POST", "/api/notifications/{id}/read", "Mark one of my notices read", tag="notifications",
       roles=ALL_STAFF, errors=(401, 404))
async def read_notification(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    notification_id = path_id(request, "notice")
    async with ctx.sessions.begin() as session:
        result = await session.execute(
            update(Notification).where(Notification.id == notification_id, Notification.staff_id == actor.id,
                                       Notification.read_at.is_(None)).values(read_at=ctx.clock()))
        if result.rowcount == 0:  # type: ignore[attr-defined]  # an UPDATE's CursorResult
            raise ApiError(404, "not_found", "no such unread notice")
    return json_response({"ok": True})
