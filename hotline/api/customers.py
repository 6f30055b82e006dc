"""Customer views: search, one account, balance and arrears, outages.

Accounts, balances and bills are for the people who talk with residents (agents,
supervisors, admins) and for services (the bot). Department staff get 403: what
they need of a customer (account number, contact name, phone, address) is on
their own department's ticket pages, which they can already read. Outage
notices are public information and open to all staff.

Names are masked (王**) in every answer, as the bot says them to a resident; the full name only comes from
POST /api/customers/{n}/reveal, which needs a reason and is recorded. Every read of an account is
recorded in the read audit (查阅记录), the service token's too (role "service").
"""
from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hotline.api.registry import (
    AGENTS,
    STAFF_AND_SERVICE,
    ApiError,
    actor_of,
    ctx_of,
    json_response,
    parse_body,
    parse_query,
    route,
)
from hotline.audit.reads import Subject, audit_reads, endpoint_of
from hotline.customers import accounts
from hotline.incidents.doors import outage_areas
from hotline.tickets.lifecycle import TicketError, normalize_phone
from models import Customer

CUSTOMER_READERS = AGENTS | {"service"}
NAME_REVEALERS = AGENTS  # who may see a full name: those who talk with residents, never department staff
MIN_SEARCH_CHARS = 2
TOO_SHORT = ("请输入至少两个字的姓名或地址，或完整的户号、电话号码 "
             "(give at least two characters of a name or address, or a whole account or phone number)")
NUMBER_CHARS = frozenset("0123456789+-() ")


def mask_name(name: str) -> str:
    """As the bot says it to a resident: the surname and a star per other character."""
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""


def search_terms(text: str) -> tuple[str | None, str | None]:
    """(an exact number, words) of what was typed: digits are a whole 户号 or phone, never part of one;
    words must be at least two characters. Raises a 422 otherwise, so a single character cannot list
    every resident whose name holds it."""
    text = text.strip()
    if len(text) < MIN_SEARCH_CHARS:
        raise ApiError(422, "query_too_short", TOO_SHORT)
    if set(text) <= NUMBER_CHARS and any(ch.isdigit() for ch in text):
        return re.sub(r"[\s\-()]", "", text), None
    return None, text


def phone_or_none(value: str | None) -> str | None:
    try:
        return normalize_phone(value)
    except TicketError:
        return None


class CustomerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str | None = Field(default=None, min_length=1, max_length=100,
                          description="a whole account or phone number, or at least two characters of a name or "
                                      "address")
    phone: str | None = None
    limit: int = Field(default=20, ge=1, le=100)


class RevealBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str = Field(min_length=2, max_length=200, description="why the full name is needed (recorded)")


class OutageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    area: str | None = None


def customer_json(c: Customer) -> dict[str, Any]:
    return {"account_number": c.account_number, "name": mask_name(c.name), "address": c.address, "area": c.area,
            "phones": [p.phone for p in c.phones], "status": c.status,
            "meter": {"model": c.meter_model, "size_dn": c.meter_size_dn, "serial": c.meter_serial},
            "opened_on": c.opened_on.isoformat() if c.opened_on else None}


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


@route("GET", "/api/customers",
       "Search customers by a whole account or phone number, or two or more characters of a name or address "
       "(names masked)", tag="customers", query=CustomerQuery, errors=(401, 403, 422), roles=CUSTOMER_READERS)
async def search(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, CustomerQuery)
    if not query.q and not query.phone:
        raise ApiError(422, "missing_query", "give q or phone")
    phone = normalize_phone(query.phone) if query.phone else None
    number, words = search_terms(query.q) if query.q else (None, None)
    async with ctx.readers() as session:
        found: dict[str, Customer] = {}
        if number is not None:  # exact: the 户号, or one of the account's phones
            by_account = await accounts.get_customer(session, number)
            if by_account is not None:
                found[by_account.account_number] = by_account
            number_phone = phone_or_none(number)
            if number_phone and (phone is None or phone == number_phone):
                for c in await accounts.search_customers(session, phone=number_phone, limit=query.limit):
                    found.setdefault(c.account_number, c)
            if phone is not None:  # both given: the accounts that match both
                found = {a: c for a, c in found.items() if phone in {p.phone for p in c.phones}}
        elif words is not None or phone is not None:
            for c in await accounts.search_customers(session, text=words, phone=phone, limit=query.limit):
                found[c.account_number] = c
        shown = sorted(found.values(), key=lambda c: c.account_number)[:query.limit]
        data = {"items": [customer_json(c) for c in shown]}
    typed_phone = phone or (phone_or_none(number) if number else None)  # the phone looked up, if any
    await audit_reads(ctx, actor_of(request), endpoint_of(request), [
        Subject(account_number=c.account_number,
                phone=typed_phone if typed_phone in {p.phone for p in c.phones} else None) for c in shown])
    return json_response(data)


async def _customer(session: Any, account_number: str) -> Customer:
    customer = await accounts.get_customer(session, account_number)
    if customer is None:
        raise ApiError(404, "unknown_account", f"no account {account_number}")
    return customer


@route("GET", "/api/customers/{account_number}", "One account with its meter (name masked)", tag="customers",
       errors=(401, 403, 404), roles=CUSTOMER_READERS)
async def get_customer(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    async with ctx.readers() as session:
        data = customer_json(await _customer(session, request.match_info["account_number"]))
    await audit_reads(ctx, actor_of(request), endpoint_of(request), [Subject(account_number=data["account_number"])])
    return json_response(data)


@route("POST", "/api/customers/{account_number}/reveal",
       "The account's full name, for a reason that is recorded in the read audit (显示全名)", tag="customers",
       body=RevealBody, errors=(401, 403, 404, 422), roles=NAME_REVEALERS)
async def reveal_name(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await parse_body(request, RevealBody)
    async with ctx.readers() as session:
        customer = await _customer(session, request.match_info["account_number"])
    await audit_reads(ctx, actor_of(request), endpoint_of(request),
                      [Subject(account_number=customer.account_number)], reason=body.reason)
    return json_response({"account_number": customer.account_number, "name": customer.name})


@route("GET", "/api/customers/{account_number}/balance",
       "Balance (prepaid credit), arrears (past due), outstanding, and the last bills; money in yuan; name masked",
       tag="customers", errors=(401, 403, 404), roles=CUSTOMER_READERS)
async def balance(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    async with ctx.readers() as session:
        customer = await _customer(session, request.match_info["account_number"])
        st = await accounts.statement(session, customer, ctx.today())
    await audit_reads(ctx, actor_of(request), endpoint_of(request),
                      [Subject(account_number=customer.account_number)])
    return json_response({
        "account_number": customer.account_number, "name": mask_name(customer.name),
        "balance": yuan(st.balance_fen), "arrears": yuan(st.arrears_fen),
        "outstanding": yuan(st.outstanding_fen), "overdue_bills": st.overdue_bills,
        "balance_fen": st.balance_fen, "arrears_fen": st.arrears_fen, "outstanding_fen": st.outstanding_fen,
        "bills": [{"period": b.period, "volume_m3": b.volume_m3, "amount": yuan(b.amount_fen),
                   "late_fee": yuan(b.late_fee_fen), "paid": yuan(b.paid_fen),
                   "reading_previous": b.reading_previous, "reading_current": b.reading_current,
                   "due_on": b.due_on.isoformat(), "outstanding": yuan(b.outstanding_fen)} for b in st.bills],
    })


@route("GET", "/api/outages", "Outages (停水) not yet over, optionally in one area", tag="customers",
       query=OutageQuery, errors=(401,), roles=STAFF_AND_SERVICE)
async def outages(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, OutageQuery)
    async with ctx.readers() as session:
        found = await accounts.current_outages(session, ctx.clock(), query.area)
        areas = {o.id: await outage_areas(session, o) for o in found}
    return json_response({"items": [
        {"id": o.id, "area": o.area, "areas": areas[o.id], "title": o.title, "detail": o.detail,
         "planned": o.planned, "starts_at": o.starts_at.isoformat(), "ends_at": o.ends_at.isoformat()}
        for o in found]})
