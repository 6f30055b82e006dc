"""One search box (the console's top bar): accounts, tickets, conversations and calls at once, by 户号,
phone, ticket number, name or address. Department staff search their department's tickets only.

A number is matched whole (a 户号 or a phone, never part of one) and words need two characters or more,
so the box answers a lookup, not a browse. Each resident in the answer is recorded in the read audit."""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from hotline.api.context import brief_names, call_brief, conversation_brief, ticket_brief
from hotline.api.customers import mask_name, search_terms
from hotline.api.lookup import Needle, conversation_conditions, read_needle, ticket_conditions
from hotline.api.registry import AGENTS, ALL_STAFF, actor_of, ctx_of, json_response, parse_query, route
from hotline.audit.reads import Subject, audit_reads, endpoint_of
from hotline.audit.subjects import of_call, of_conversation, of_ticket
from hotline.customers import accounts
from models import Call, Conversation, Customer, CustomerPhone, Staff, Ticket

PER_KIND = 10


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    q: str = Field(min_length=1, max_length=100,
                   description="a whole 户号, phone or ticket number, or two or more characters of a name or address")


@route("GET", "/api/search", "Search accounts, tickets, conversations and calls at once", tag="search",
       query=SearchQuery, roles=ALL_STAFF, errors=(401, 422))
async def search(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    query = parse_query(request, SearchQuery)
    search_terms(query.q)  # a 422 for one character
    now = ctx.clock()
    result: dict[str, Any] = {"q": query.q, "accounts": [], "tickets": [], "conversations": [], "calls": []}
    shown: list[Subject] = []
    async with ctx.readers() as session:
        needle = await read_needle(session, query.q)
        by_id: dict[int, Ticket] = {}
        for cond in ticket_conditions(needle):  # one indexed newest-first walk each, merged
            stmt = select(Ticket).where(cond)
            if actor.role == "department":
                stmt = stmt.where(Ticket.department_id == actor.department_id)
            for t in (await session.execute(stmt.order_by(Ticket.id.desc()).limit(PER_KIND))).scalars():
                by_id[t.id] = t
        tickets = sorted(by_id.values(), key=lambda t: t.id, reverse=True)[:PER_KIND]
        depts, staff = await brief_names(session, tickets)
        result["tickets"] = [ticket_brief(t, depts, staff, now) for t in tickets]
        shown += [of_ticket(t) for t in tickets]
        if actor.role in AGENTS:
            await _for_agents(session, needle, result, shown)
        if needle.phone:  # the accounts that phone belongs to: their rows say it was looked up by phone
            phone_accounts = set((await session.execute(select(Customer.account_number).join(CustomerPhone).where(
                CustomerPhone.phone == needle.phone))).scalars())
            shown = [replace(s, phone=needle.phone) if s.account_number in phone_accounts else s for s in shown]
    await audit_reads(ctx, actor, endpoint_of(request), shown)
    return json_response(result)


async def _for_agents(session: AsyncSession, needle: Needle, result: dict[str, Any], shown: list[Subject]) -> None:
    """Accounts, conversations and calls: what only those who talk with residents may search."""
    if needle.digits or needle.phone:
        # A number names accounts exactly, by 户号 or by phone; a 10-digit 户号 reads as a phone number too,
        # so both were looked up (read_needle) and neither stands in for the other.
        found = list((await session.execute(
            select(Customer).options(selectinload(Customer.phones)).where(Customer.id.in_(needle.customer_ids))
            .order_by(Customer.account_number).limit(PER_KIND))).scalars()) if needle.customer_ids else []
    else:
        found = await accounts.search_customers(session, text=needle.text, limit=PER_KIND)
    result["accounts"] = [{"account_number": c.account_number, "name": mask_name(c.name),
                           "address": c.address, "area": c.area} for c in found]
    shown += [Subject(account_number=c.account_number) for c in found]
    rows = (await session.execute(
        select(Conversation, Staff.display_name).outerjoin(Staff, Staff.id == Conversation.agent_id)
        .where(or_(*conversation_conditions(needle, words=False)))
        .order_by(Conversation.id.desc()).limit(PER_KIND))).all() \
        if (needle.digits or needle.phone or needle.ticket_number) else []
    result["conversations"] = [conversation_brief(c, name) for c, name in rows]
    customer_ids = {c.customer_id for c, _ in rows if c.customer_id}
    account_of = dict((await session.execute(select(Customer.id, Customer.account_number).where(
        Customer.id.in_(customer_ids)))).all()) if customer_ids else {}
    shown += [of_conversation(c, account_of.get(c.customer_id or 0)) for c, _ in rows]
    call_where = [Call.caller == (needle.phone or needle.text)]
    if needle.digits:
        call_where.append(Call.account_number == needle.text)
    calls: dict[int, Any] = {}
    for cond in call_where:
        stmt_call = select(Call, Ticket.number).outerjoin(Ticket, Ticket.id == Call.ticket_id).where(cond)
        for c, n in (await session.execute(stmt_call.order_by(Call.id.desc()).limit(PER_KIND))).all():
            calls[c.id] = (c, n)
    ordered = sorted(calls.values(), key=lambda r: -r[0].id)[:PER_KIND]
    result["calls"] = [call_brief(c, n) for c, n in ordered]
    shown += [of_call(c) for c, _ in ordered]
