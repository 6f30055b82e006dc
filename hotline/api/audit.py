"""GET /api/audit/reads: the read audit (查阅记录) for admins: who looked at which resident's data, when and
through which endpoint, filtered by account, phone, staff member and days."""
from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from hotline.api.registry import ctx_of, json_response, parse_query, route
from hotline.audit.reads import normalise_phone
from models import ReadAudit, Staff

ADMINS = frozenset({"admin"})


class ReadAuditQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, str_strip_whitespace=True)
    account: str | None = Field(default=None, max_length=32, description="户号")
    phone: str | None = Field(default=None, max_length=32)
    staff: str | None = Field(default=None, max_length=64, description="the reader's username")
    from_: dt.date | None = Field(default=None, alias="from", description="on or after this day (Beijing time)")
    to: dt.date | None = Field(default=None, description="on or before this day (Beijing time)")
    limit: int = Field(default=100, ge=1, le=500)
    before_id: int | None = Field(default=None, description="cursor: the next_before_id of the previous page")


def read_json(r: ReadAudit, username: str | None) -> dict[str, Any]:
    return {"id": r.id, "at": r.at.isoformat(), "staff_id": r.staff_id, "staff": username,
            "staff_name": r.staff_name, "role": r.role, "endpoint": r.endpoint,
            "account_number": r.account_number, "phone": r.phone, "openid": r.openid,
            "conversation_id": r.conversation_id, "call_id": r.call_id, "ticket_number": r.ticket_number,
            "hits": r.hits, "reason": r.reason}


@route("GET", "/api/audit/reads",
       "The read audit (查阅记录): staff reads of residents' data, newest first; admins only", tag="audit",
       query=ReadAuditQuery, roles=ADMINS, errors=(401, 403, 422))
async def reads(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, ReadAuditQuery)
    tz = ctx.router.calendar.timezone
    stmt = (select(ReadAudit, Staff.username).outerjoin(Staff, Staff.id == ReadAudit.staff_id)
            .order_by(ReadAudit.id.desc()).limit(query.limit + 1))
    if query.account:
        stmt = stmt.where(ReadAudit.account_number == query.account)
    if query.phone:
        stmt = stmt.where(ReadAudit.phone == normalise_phone(query.phone))
    if query.from_:
        stmt = stmt.where(ReadAudit.at >= dt.datetime.combine(query.from_, dt.time(), tz))
    if query.to:
        stmt = stmt.where(ReadAudit.at < dt.datetime.combine(query.to + dt.timedelta(days=1), dt.time(), tz))
    if query.before_id:
        stmt = stmt.where(ReadAudit.id < query.before_id)
    async with ctx.readers() as session:
        if query.staff:
            stmt = stmt.where(ReadAudit.staff_id.in_(select(Staff.id).where(Staff.username == query.staff)))
        rows = (await session.execute(stmt)).all()
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    return json_response({"items": [read_json(r, username) for r, username in rows],
                          "next_before_id": rows[-1][0].id if more and rows else None})
