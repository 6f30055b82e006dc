"""The resident beside the conversation (Chatwoot's contact panel): who they are, what they owe, their
tickets, their previous conversations and calls, and the outage in their area.

Each panel read is recorded in the read audit (查阅记录) before it is answered: the account, the phone, the
conversation (and a WeChat user's openid), and each other account the WeChat user bound.

Who the resident is, in order: the account the bot confirmed (Conversation.customer_id), the account a
WeChat user bound (绑定户号), the account or phone the bot learned, a phone channel's caller number, the
account on a ticket linked to the conversation. Every lookup is by an indexed column, so the panel stays
fast with a million tickets.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from hotline.api.customers import mask_name, yuan
from hotline.api.registry import AGENTS, ApiError, actor_of, ctx_of, json_response, parse_query, path_id, route
from hotline.audit.reads import Subject, audit_reads, endpoint_of
from hotline.context import AppContext
from hotline.customers import accounts, verification
from hotline.incidents import bindings
from hotline.tickets.lifecycle import STATUS_LABELS, TicketError, normalize_phone
from models import Call, Conversation, Customer, CustomerPhone, Department, Staff, Ticket
from models.ticket import OPEN_STATUSES

PHONE_RE = re.compile(r"^\+?[0-9]{7,15}$")
HISTORY = 10  # previous tickets, conversations and calls shown


def as_phone(value: str | None) -> str | None:
    """A telephone number, normalized, or None for anything else (an openid, a web client id)."""
    if not value:
        return None
    try:
        phone = normalize_phone(value)
    except TicketError:
        return None
    return phone if phone and PHONE_RE.match(phone) else None


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def ticket_brief(t: Ticket, depts: dict[int, str], staff: dict[int, str], now: dt.datetime) -> dict[str, Any]:
    return {"number": t.number, "status": t.status, "status_label": STATUS_LABELS.get(t.status, t.status),
            "category": t.category, "business_type": t.business_type, "priority": t.priority,
            "address": t.address, "description": t.description[:200], "created_at": _iso(t.created_at),
            "resolution_due_at": _iso(t.resolution_due_at), "department_name": depts.get(t.department_id),
            "assignee_name": staff.get(t.assignee_id or 0), "account_number": t.account_number,
            "contact_phone": t.contact_phone, "satisfaction": t.satisfaction,
            "overdue": t.status in OPEN_STATUSES and t.resolution_due_at < now,
            "conversation_id": t.conversation_id}


async def brief_names(session: AsyncSession, tickets: list[Ticket]) -> tuple[dict[int, str], dict[int, str]]:
    depts = dict((await session.execute(select(Department.id, Department.name))).all())
    ids = {t.assignee_id for t in tickets if t.assignee_id}
    staff = dict((await session.execute(select(Staff.id, Staff.display_name).where(Staff.id.in_(ids)))).all()) \
        if ids else {}
    return depts, staff


def call_brief(c: Call, ticket_number: str | None) -> dict[str, Any]:
    end, start = c.ended_at, c.answered_at or c.started_at
    return {"id": c.id, "caller": c.caller, "account_number": c.account_number, "started_at": _iso(c.started_at),
            "duration_seconds": int((end - start).total_seconds()) if end and start else None,
            "digits": c.digits, "outcome": c.outcome, "ticket_number": ticket_number}


def conversation_brief(c: Conversation, agent_name: str | None = None) -> dict[str, Any]:
    return {"id": c.id, "channel": c.channel, "status": c.status, "created_at": _iso(c.created_at),
            "closed_at": _iso(c.closed_at), "satisfaction": c.satisfaction, "bot_intent": c.bot_intent,
            "agent_name": agent_name}


async def resident_context(ctx: AppContext, session: AsyncSession, *, customer: Customer | None,
                           phone: str | None, account: str | None = None,
                           exclude_conversation: int | None = None) -> dict[str, Any]:
    """Everything the panel shows about one resident, known by account, phone or both."""
    now = ctx.clock()
    # The account's registered phones only: a number the resident gave for a leak elsewhere is not theirs.
    phones = sorted({p.phone for p in customer.phones}) if customer else ([phone] if phone else [])
    account = customer.account_number if customer else account
    data: dict[str, Any] = {"customer": None, "balance": None, "outages": [], "phone": phone}
    if customer is not None:
        data["customer"] = {
            "account_number": customer.account_number, "name": mask_name(customer.name),
            "address": customer.address, "area": customer.area, "status": customer.status, "phones": phones,
            "meter": {"model": customer.meter_model, "size_dn": customer.meter_size_dn,
                      "serial": customer.meter_serial}}
        st = await accounts.statement(session, customer, ctx.today())
        data["balance"] = {"balance": yuan(st.balance_fen), "arrears": yuan(st.arrears_fen),
                           "outstanding": yuan(st.outstanding_fen), "overdue_bills": st.overdue_bills,
                           "arrears_fen": st.arrears_fen}
        data["outages"] = [{"area": o.area, "title": o.title, "detail": o.detail, "planned": o.planned,
                            "starts_at": _iso(o.starts_at), "ends_at": _iso(o.ends_at)}
                           for o in await accounts.current_outages(session, now, customer.area)]
    # Tickets: those filed under the account; with no account known, those of the caller's phone. Each an
    # indexed (column, id) walk, merged newest first.
    found: dict[int, Ticket] = {}
    wheres = [Ticket.account_number == account] if account else [Ticket.contact_phone == p for p in phones]
    for where in wheres:
        for t in (await session.execute(select(Ticket).where(where).order_by(Ticket.id.desc()).limit(50))).scalars():
            found[t.id] = t
    tickets = sorted(found.values(), key=lambda t: t.id, reverse=True)
    depts, staff = await brief_names(session, tickets)
    data["open_tickets"] = [ticket_brief(t, depts, staff, now) for t in tickets if t.status in OPEN_STATUSES]
    data["past_tickets"] = [ticket_brief(t, depts, staff, now) for t in tickets
                            if t.status not in OPEN_STATUSES][:HISTORY]
    # Conversations: the account's own, and those its tickets came from.
    conv_where = []
    if customer is not None:
        conv_where.append(Conversation.customer_id == customer.id)
    linked = {t.conversation_id for t in tickets if t.conversation_id}
    if linked:
        conv_where.append(Conversation.id.in_(linked))
    if phone:
        conv_where.append(and_(Conversation.channel == "phone", Conversation.external_user == phone))
    conversations: list[dict[str, Any]] = []
    if conv_where:
        stmt = (select(Conversation, Staff.display_name).outerjoin(Staff, Staff.id == Conversation.agent_id)
                .where(or_(*conv_where)).order_by(Conversation.id.desc()).limit(HISTORY + 1))
        if exclude_conversation:
            stmt = stmt.where(Conversation.id != exclude_conversation)
        conversations = [conversation_brief(c, name) for c, name in (await session.execute(stmt)).all()][:HISTORY]
    data["conversations"] = conversations
    call_where = ([Call.account_number == account] if account else []) + [Call.caller == p for p in phones]
    found_calls: dict[int, tuple[Call, str | None]] = {}
    for where in call_where:  # one indexed newest-first walk each, as for tickets
        for c, n in (await session.execute(select(Call, Ticket.number).outerjoin(Ticket, Ticket.id == Call.ticket_id)
                                           .where(where).order_by(Call.id.desc()).limit(HISTORY))).all():
            found_calls[c.id] = (c, n)
    calls = [call_brief(c, n) for c, n in sorted(found_calls.values(), key=lambda r: -r[0].id)[:HISTORY]]
    data["calls"] = calls
    return data


async def other_tickets(ctx: AppContext, session: AsyncSession, conv: Conversation,
                        data: dict[str, Any]) -> list[dict[str, Any]]:
    """Tickets linked to this conversation that are not the resident's account's (a leak reported at another
    address, say): shown apart as 本会话的其他工单, never under the account."""
    listed = {t["number"] for t in data["open_tickets"] + data["past_tickets"]}
    rows = (await session.execute(select(Ticket).where(Ticket.conversation_id == conv.id)
                                  .order_by(Ticket.id.desc()).limit(HISTORY))).scalars().all()
    account = data["customer"]["account_number"] if data["customer"] else None
    rows = [t for t in rows if t.number not in listed and (account is None or t.account_number != account)]
    depts, staff = await brief_names(session, list(rows))
    return [ticket_brief(t, depts, staff, ctx.clock()) for t in rows]


async def customer_by_account(session: AsyncSession, account: str | None) -> Customer | None:
    if not account:
        return None
    return await accounts.get_customer(session, str(account))


async def customer_by_phone(session: AsyncSession, phone: str | None) -> Customer | None:
    if not phone:
        return None
    return (await session.execute(select(Customer).options(selectinload(Customer.phones)).join(CustomerPhone)
                                  .where(CustomerPhone.phone == phone).order_by(Customer.id).limit(1))
            ).scalar_one_or_none()


@route("GET", "/api/conversations/{id}/context",
       "The resident beside a conversation: account (name masked), balance and arrears, open and past tickets, "
       "previous conversations and calls, the outage in their area", tag="conversations", roles=AGENTS,
       errors=(401, 403, 404))
async def conversation_context(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    conv_id = path_id(request, "conversation")
    async with ctx.readers() as session:
        conv = await session.get(Conversation, conv_id)
        if conv is None:
            raise ApiError(404, "not_found", "no such conversation")
        learned: dict[str, Any] = conv.slots.get("learned") or {}
        phone = as_phone(learned.get("phone")) or as_phone(conv.external_user if conv.channel == "phone" else None)
        customer, matched = None, None
        if conv.customer_id is not None:
            customer = (await session.execute(select(Customer).options(selectinload(Customer.phones))
                                              .where(Customer.id == conv.customer_id))).scalar_one_or_none()
            matched = "confirmed"
        bound = await bindings.accounts_of(session, conv.external_user) if conv.channel == "wechat" else []
        if customer is None and bound:
            customer, matched = await customer_by_account(session, bound[0].account_number), "bound"
        if customer is None and learned.get("account_number"):
            customer, matched = await customer_by_account(session, str(learned["account_number"])), "account"
        if customer is None and phone:
            customer, matched = await customer_by_phone(session, phone), "phone"
        if customer is None:
            account = (await session.execute(select(Ticket.account_number).where(
                Ticket.conversation_id == conv.id, Ticket.account_number.is_not(None))
                .order_by(Ticket.id.desc()).limit(1))).scalar_one_or_none()
            customer, matched = await customer_by_account(session, account), "ticket"
        data = await resident_context(ctx, session, customer=customer, phone=phone,
                                      exclude_conversation=conv.id)
        data["other_tickets"] = await other_tickets(ctx, session, conv, data)
        resident = verification.Resident(channel=conv.channel, key=conv.external_user, conversation_id=conv.id)
        verified = await verification.verified_by(session, resident, customer) if customer is not None else None
    account = customer.account_number if customer is not None else None
    await audit_reads(ctx, actor_of(request), endpoint_of(request), [
        Subject(account_number=account, phone=phone, conversation_id=conv.id,
                openid=conv.external_user if conv.channel == "wechat" else None),
        *(Subject(account_number=c.account_number, conversation_id=conv.id) for c in bound
          if c.account_number != account)])
    data["matched_by"] = matched if customer is not None else None
    data["verified_by"] = verified  # how the resident proved the account is theirs; None: 户号未核实
    data["bound_accounts"] = [{"account_number": c.account_number, "name": mask_name(c.name), "area": c.area}
                              for c in bound]
    data["conversation_id"] = conv_id
    return json_response(data)


class ResidentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str | None = Field(default=None, max_length=32)
    phone: str | None = Field(default=None, max_length=32)


@route("GET", "/api/residents/context",
       "The same panel for an account or a phone number (a caller), without a conversation",
       tag="customers", query=ResidentQuery, roles=AGENTS, errors=(401, 403, 422))
async def resident_by_contact(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, ResidentQuery)
    phone = as_phone(query.phone)
    if not query.account and not phone:
        raise ApiError(422, "missing_query", "give account or phone")
    async with ctx.readers() as session:
        customer = await customer_by_account(session, query.account) or await customer_by_phone(session, phone)
        data = await resident_context(ctx, session, customer=customer, phone=phone, account=query.account)
    await audit_reads(ctx, actor_of(request), endpoint_of(request), [
        Subject(account_number=customer.account_number if customer else query.account, phone=phone)])
    return json_response(data)
