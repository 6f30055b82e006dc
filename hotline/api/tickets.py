"""Ticket views: create, list with filters, get, lifecycle actions, comments."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import Actor
from hotline.api.context import as_phone
from hotline.api.registry import (
    ALL_STAFF,
    LOCAL_TIME,
    STAFF_AND_SERVICE,
    ApiError,
    ChannelName,
    RowOf,
    actor_of,
    check_rows,
    ctx_of,
    json_response,
    parse_body,
    parse_query,
    route,
    utility_time,
)
from hotline.audit.reads import audit_reads, endpoint_of
from hotline.audit.subjects import of_ticket
from hotline.context import AppContext
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import STATUS_LABELS, TicketDraft
from models import Conversation, Department, Staff, Ticket, TicketAttachment, TicketEvent
from models.ticket import OPEN_STATUSES

Category = Literal["repair", "complaint", "inquiry", "billing"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TicketCreate(_Body):
    category: Category
    description: str = Field(min_length=1, max_length=4000)
    channel: ChannelName
    business_type: str | None = Field(default=None, max_length=40)
    priority: Literal["normal", "urgent"] | None = None
    account_number: str | None = Field(default=None, max_length=32)
    phone: str | None = Field(default=None, max_length=32)
    contact_name: str = Field(default="", max_length=100)
    address: str = Field(default="", max_length=255)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)
    conversation_id: Annotated[int | None, RowOf(Conversation, "conversation")] = None


class TicketAction(_Body):
    note: str = Field(default="", max_length=4000)
    assignee: str | None = Field(default=None, max_length=64)
    satisfaction: int | None = Field(default=None, ge=1, le=5)
    reached: bool | None = None
    category: Category | None = None
    business_type: str | None = Field(default=None, max_length=40)
    priority: Literal["normal", "urgent"] | None = None
    due_at: dt.datetime | None = Field(default=None, description="request_extension: the new resolution time; "
                                                                 + LOCAL_TIME)


class Comment(_Body):
    note: str = Field(min_length=1, max_length=4000)


class TicketQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["new", "assigned", "in_progress", "resolved", "callback", "closed", "open"] | None = None
    department: str | None = None
    category: Category | None = None
    channel: ChannelName | None = None
    overdue: bool | None = None
    account: str | None = None
    phone: str | None = None
    q: str | None = Field(default=None, min_length=1, max_length=100,
                          description="a ticket number, 户号 or phone, or text in the description, address or "
                                      "contact name")
    limit: int = Field(default=50, ge=1, le=200)
    before_id: int | None = Field(default=None, description="cursor: the next_before_id of the previous page")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


async def _names(session: AsyncSession, tickets: list[Ticket]) -> tuple[dict[int, Department], dict[int, Staff]]:
    depts = {d.id: d for d in (await session.execute(select(Department))).scalars()}
    staff_ids = {i for t in tickets for i in (t.assignee_id, t.supervisor_id) if i}
    staff = {s.id: s for s in (await session.execute(
        select(Staff).where(Staff.id.in_(staff_ids)))).scalars()} if staff_ids else {}
    return depts, staff


def ticket_json(ctx: AppContext, ticket: Ticket, depts: dict[int, Department], staff: dict[int, Staff],
                now: dt.datetime) -> dict[str, Any]:
    dept = depts.get(ticket.department_id)
    assignee, supervisor = staff.get(ticket.assignee_id or 0), staff.get(ticket.supervisor_id or 0)
    bt = ctx.router.spec.business_types.get(ticket.business_type)
    limits = (bt.limits.get(ticket.priority) or bt.limits["normal"]) if bt else None  # type: ignore[call-overload]
    return {
        "number": ticket.number, "category": ticket.category, "business_type": ticket.business_type,
        "business_type_name": bt.name if bt else ticket.business_type, "priority": ticket.priority,
        "channel": ticket.channel, "status": ticket.status, "status_label": STATUS_LABELS[ticket.status],
        "external_ref": ticket.external_ref,  # another system's number for it: the 12345 order number
        "account_number": ticket.account_number, "contact_name": ticket.contact_name,
        "contact_phone": ticket.contact_phone, "address": ticket.address,
        "latitude": ticket.latitude, "longitude": ticket.longitude, "description": ticket.description,
        "department": dept.code if dept else None, "department_name": dept.name if dept else None,
        "assignee": assignee.username if assignee else None,
        "assignee_name": assignee.display_name if assignee else None,
        "supervisor": supervisor.username if supervisor else None,
        "supervisor_name": supervisor.display_name if supervisor else None,
        "conversation_id": ticket.conversation_id,
        "created_at": _iso(ticket.created_at), "updated_at": _iso(ticket.updated_at),
        "response_due_at": _iso(ticket.response_due_at), "resolution_due_at": _iso(ticket.resolution_due_at),
        "responded_at": _iso(ticket.responded_at), "resolved_at": _iso(ticket.resolved_at),
        "closed_at": _iso(ticket.closed_at), "callback_due_at": _iso(ticket.callback_due_at),
        "callback_at": _iso(ticket.callback_at), "callback_result": ticket.callback_result,
        "on_site_due_at": _iso(ticket.on_site_due_at), "arrived_at": _iso(ticket.arrived_at),
        "extension": {"due_at": _iso(ticket.extension_due_at), "reason": ticket.extension_reason}
        if ticket.extension_due_at else None,
        "satisfaction": ticket.satisfaction, "reopen_count": ticket.reopen_count,
        "escalation_level": ticket.escalation_level,
        "overdue": ticket.status in OPEN_STATUSES and ticket.resolution_due_at < now,
        # The limits as a resident hears them, e.g. "4小时" / "5个工作日" / "当日".
        "response_limit_text": limits.response.describe() if limits else None,
        "resolution_limit_text": limits.resolution.describe() if limits else None,
    }


def event_json(evt: TicketEvent) -> dict[str, Any]:
    return {"at": evt.at.isoformat(), "action": evt.action, "actor_kind": evt.actor_kind,
            "actor_name": evt.actor_name, "from_status": evt.from_status, "to_status": evt.to_status,
            "note": evt.note, "data": evt.data}


async def full_ticket_json(ctx: AppContext, session: AsyncSession, ticket: Ticket,
                           actor: Actor | None = None) -> dict[str, Any]:
    """The ticket with its trail and attachments; with `actor`, also what that actor may do next."""
    depts, staff = await _names(session, [ticket])
    data = ticket_json(ctx, ticket, depts, staff, ctx.clock())
    if actor is not None:
        data["allowed_actions"] = lifecycle.allowed_actions(actor, ticket)
    events = (await session.execute(
        select(TicketEvent).where(TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id))).scalars()
    data["events"] = [event_json(e) for e in events]
    attachments = (await session.execute(
        select(TicketAttachment).where(TicketAttachment.ticket_id == ticket.id)
        .order_by(TicketAttachment.id))).scalars()
    data["attachments"] = [{"kind": a.kind, "uri": a.uri, "media_id": a.media_id,
                            "created_at": a.created_at.isoformat()} for a in attachments]
    return data


@route("POST", "/api/tickets", "Create a ticket; it is routed and given its time limits at once",
       tag="tickets", roles=frozenset({"agent", "supervisor", "admin", "service"}), body=TicketCreate,
       status=201, errors=(400, 401, 403, 422))
async def create_ticket(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, TicketCreate)
    draft = TicketDraft(**body.model_dump())
    async with ctx.sessions.begin() as session:
        await check_rows(session, body)
        ticket = await lifecycle.create_ticket(session, ctx.router, draft, actor, ctx.clock())
        data = await full_ticket_json(ctx, session, ticket, actor)
    return json_response(data, status=201)


def _apply_filters(stmt: Any, query: TicketQuery, actor: Actor, depts: dict[str, int], now: dt.datetime) -> Any:
    if actor.is_staff and actor.role == "department":
        stmt = stmt.where(Ticket.department_id == actor.department_id)
    if query.status == "open":
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES))
    elif query.status:
        stmt = stmt.where(Ticket.status == query.status)
    if query.department:
        if query.department not in depts:
            raise ApiError(422, "unknown_department", f"unknown department {query.department!r}")
        stmt = stmt.where(Ticket.department_id == depts[query.department])
    if query.category:
        stmt = stmt.where(Ticket.category == query.category)
    if query.channel:
        stmt = stmt.where(Ticket.channel == query.channel)
    if query.overdue is True:
        stmt = stmt.where(Ticket.status.in_(OPEN_STATUSES), Ticket.resolution_due_at < now)
    elif query.overdue is False:
        stmt = stmt.where(or_(Ticket.status.not_in(OPEN_STATUSES), Ticket.resolution_due_at >= now))
    if query.account:
        stmt = stmt.where(Ticket.account_number == query.account)
    if query.phone:
        stmt = stmt.where(Ticket.contact_phone == lifecycle.normalize_phone(query.phone))
    if query.q:
        # autoescape: a % or _ typed by the user is a literal character, not a LIKE wildcard.
        # 户号 and phone numbers too, exactly, as agents search by them: a number of 7 digits or more is looked
        # up by 户号 and phone only, each through its own index (rowid IN (...) is a seek, where an OR
        # with ORDER BY id DESC LIMIT had SQLite scan a million descriptions for it).
        q_phone = as_phone(query.q)
        if query.q.isdigit() and len(query.q) >= 7:
            by_account = select(Ticket.id).where(Ticket.account_number == query.q)
            exact: Any = by_account.union(select(Ticket.id).where(Ticket.contact_phone == q_phone)) if q_phone \
                else by_account
            stmt = stmt.where(Ticket.id.in_(exact))
        else:
            stmt = stmt.where(or_(Ticket.number == query.q, Ticket.description.contains(query.q, autoescape=True),
                                  Ticket.address.contains(query.q, autoescape=True),
                                  Ticket.contact_name.contains(query.q, autoescape=True),
                                  *([Ticket.contact_phone == q_phone] if q_phone else [])))
    if query.before_id:
        stmt = stmt.where(Ticket.id < query.before_id)
    return stmt


@route("GET", "/api/tickets", "List tickets, newest first, with filters and a cursor",
       tag="tickets", query=TicketQuery, errors=(401, 422))
async def list_tickets(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    query = parse_query(request, TicketQuery)
    now = ctx.clock()
    async with ctx.readers() as session:
        dept_ids = dict((await session.execute(select(Department.code, Department.id))).all())
        stmt = _apply_filters(select(Ticket), query, actor, dept_ids, now)
        tickets = list((await session.execute(
            stmt.order_by(Ticket.id.desc()).limit(query.limit + 1))).scalars())
        more = len(tickets) > query.limit
        tickets = tickets[:query.limit]
        depts, staff = await _names(session, tickets)
    if query.account or query.phone or query.q:  # a lookup of a resident; the plain lists are the work queues
        await audit_reads(ctx, actor, endpoint_of(request), [of_ticket(t) for t in tickets])
    return json_response({
        "items": [ticket_json(ctx, t, depts, staff, now) for t in tickets],
        "next_before_id": tickets[-1].id if more else None,
    })


@route("GET", "/api/tickets/{number}", "Get one ticket with its audit trail", tag="tickets", errors=(401, 404))
async def get_ticket(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    actor = actor_of(request)
    async with ctx.readers() as session:
        ticket = await lifecycle.get_ticket(session, request.match_info["number"], actor)
        data = await full_ticket_json(ctx, session, ticket, actor)
    subject = of_ticket(ticket)  # its contact name, phone and address: a read of the resident's data
    await audit_reads(ctx, actor, endpoint_of(request), [replace(subject, ticket_number=ticket.number)])
    return json_response(data)


async def _act(request: web.Request, action: str, body: TicketAction) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    if body.due_at is not None:
        body.due_at = utility_time(ctx, body.due_at)
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, request.match_info["number"], actor, for_update=True)
        await lifecycle.transition(session, ctx.router, ticket, action, actor, ctx.clock(), **body.model_dump())
        data = await full_ticket_json(ctx, session, ticket, actor)
    return json_response(data)


def _action_view(action: str) -> Any:
    async def view(request: web.Request) -> web.Response:
        return await _act(request, action, await parse_body(request, TicketAction))
    view.__name__ = f"ticket_{action}"
    return view


_ACTION_DOCS = {
    "assign": "Assign to a responsible person (派单); needs assignee",
    "start": "The assignee starts the work",
    "resolve": "Mark the work done (办结); needs a note",
    "callback": "Record the callback (回访): reached, satisfaction 1-5, note",
    "close": "Archive after the callback (归档)",
    "reopen": "Reopen after an unsatisfied callback; needs a note",
    "reroute": "Re-route to another category, business type or priority (转派)",
    "arrive": "The repair crew is on site (到场)",
    "request_extension": "Ask for more time (延期): note (the reason) and due_at (the new resolution time)",
    "approve_extension": "The ticket's supervisor approves the pending extension",
    "reject_extension": "The ticket's supervisor rejects the pending extension; note optional",
    "return": "Send back a ticket that is not this department's business (退单); needs a note",
}
for _action, _summary in _ACTION_DOCS.items():
    _roles = lifecycle.TRANSITIONS[_action].roles
    route("POST", f"/api/tickets/{{number}}/{_action}", _summary, tag="tickets", roles=_roles,
          body=TicketAction, errors=(400, 401, 403, 404, 409, 422))(_action_view(_action))


@route("POST", "/api/tickets/{number}/comments", "Add a comment to the audit trail", tag="tickets",
       roles=STAFF_AND_SERVICE, body=Comment, errors=(400, 401, 404, 422))
async def add_comment(request: web.Request) -> web.Response:
    body = await parse_body(request, Comment)
    return await _act(request, "comment", TicketAction(note=body.note))


class AssigneeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department: str = Field(min_length=1, max_length=40)


@route("GET", "/api/assignees", "Active staff of a department, for assigning its tickets", tag="tickets",
       query=AssigneeQuery, roles=ALL_STAFF, errors=(401, 404, 422))
async def assignees(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    query = parse_query(request, AssigneeQuery)
    async with ctx.readers() as session:
        dept = (await session.execute(
            select(Department).where(Department.code == query.department))).scalar_one_or_none()
        if dept is None or (actor.role == "department" and dept.id != actor.department_id):
            raise ApiError(404, "not_found", f"no department {query.department!r}")
        people = (await session.execute(select(Staff).where(Staff.department_id == dept.id, Staff.active)
                                        .order_by(Staff.role.desc(), Staff.username))).scalars().all()
    return json_response({"items": [{"username": s.username, "display_name": s.display_name, "role": s.role}
                                    for s in people]})
