"""Customer views: search, one account, balance and arrears, outages.

Accounts, balances and bills are for the people who talk with residents (agents,
supervisors, admins) and for services (the bot). Department staff get 403: what
they need of a customer (account number, contact name, phone, address) is on
their own department's ticket pages, which they can already read. Outage
notices are public information and open to all staff.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hotline.api.registry import AGENTS, STAFF_AND_SERVICE, ApiError, ctx_of, json_response, parse_query, route
from hotline.customers import accounts
from hotline.incidents.doors import outage_areas
from hotline.tickets.lifecycle import normalize_phone
from models import Customer

CUSTOMER_READERS = AGENTS | {"service"}


class CustomerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str | None = Field(default=None, min_length=1, max_length=100,
                          description="account number, or part of a name or address")
    phone: str | None = None
    limit: int = Field(default=20, ge=1, le=100)


class OutageQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    area: str | None = None


def customer_json(c: Customer) -> dict[str, Any]:
    return {"account_number": c.account_number, "name": c.name, "address": c.address, "area": c.area,
            "phones": [p.phone for p in c.phones], "status": c.status,
            "meter": {"model": c.meter_model, "size_dn": c.meter_size_dn, "serial": c.meter_serial},
            "opened_on": c.opened_on.isoformat() if c.opened_on else None}


def yuan(fen: int) -> str:
    return f"{fen / 100:.2f}"


@route("GET", "/api/customers", "Search customers by account number, name, address or phone",
       tag="customers", query=CustomerQuery, errors=(401, 403, 422), roles=CUSTOMER_READERS)
async def search(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, CustomerQuery)
    if not query.q and not query.phone:
        raise ApiError(422, "missing_query", "give q or phone")
    phone = normalize_phone(query.phone) if query.phone else None
    async with ctx.readers() as session:
        found = await accounts.search_customers(session, text=query.q, phone=phone, limit=query.limit)
        return json_response({"items": [customer_json(c) for c in found]})


async def _customer(session: Any, account_number: str) -> Customer:
    customer = await accounts.get_customer(session, account_number)
    if customer is None:
        raise ApiError(404, "unknown_account", f"no account {account_number}")
    return customer


@route("GET", "/api/customers/{account_number}", "One account with its meter", tag="customers",
       errors=(401, 403, 404), roles=CUSTOMER_READERS)
async def get_customer(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    async with ctx.readers() as session:
        return json_response(customer_json(await _customer(session, request.match_info["account_number"])))


@route("GET", "/api/customers/{account_number}/balance",
       "Balance (prepaid credit), arrears (past due), outstanding, and the last bills; money in yuan",
       tag="customers", errors=(401, 403, 404), roles=CUSTOMER_READERS)
async def balance(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    async with ctx.readers() as session:
        customer = await _customer(session, request.match_info["account_number"])
        st = await accounts.statement(session, customer, ctx.today())
    return json_response({
        "account_number": customer.account_number, "name": customer.name,
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
