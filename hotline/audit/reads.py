"""Recording staff reads of a resident's personal data (查阅记录).

Every view that shows a resident's account, contact details, conversation, call, recording or
export records who read it, in what role, when, through which endpoint, and whose data it was.

Two ways in:

- `record_read(session, actor, endpoint, ...)` adds one row to a session the caller commits: an
  export or any other change made in a writer transaction records its read in the same commit.
- `audit_reads(ctx, actor, endpoint, subjects)` writes the rows of one answer in a short transaction
  of its own and returns only once they are committed. Views call it after reading and before
  answering, so a failing audit fails the request and no data leaves unrecorded. (The views read
  through `ctx.readers`, a deferred transaction on SQLite: writing in it would have to upgrade a
  read snapshot to the write lock, which SQLite refuses at once with SQLITE_BUSY whenever another
  writer committed meanwhile.)

The service token (the bot) is recorded too, with role "service": it costs the same row, and an
auditor then sees every path by which a resident's data left the store.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import Actor
from hotline.context import AppContext
from models.audit import ReadAudit
from models.base import utcnow

_PHONE_SEPARATORS = re.compile(r"[\s\-()]")


def normalise_phone(phone: str | None) -> str | None:
    """As customer_phones and tickets store it: digits (and a leading +) without separators."""
    if not phone:
        return None
    return _PHONE_SEPARATORS.sub("", phone)[:32] or None


def endpoint_of(request: web.Request) -> str:
    """The method and the route's pattern (GET /api/customers/{account_number}), never the values in it."""
    resource = request.match_info.route.resource
    pattern = resource.canonical if resource is not None else request.path
    return f"{request.method} {pattern}"[:120]


def role_of(actor: Actor) -> str:
    return actor.role if actor.is_staff and actor.role else actor.kind


def read_row(actor: Actor, endpoint: str, *, account_number: str | None = None, phone: str | None = None,
             openid: str | None = None, conversation_id: int | None = None, call_id: int | None = None,
             hits: int = 1, ticket_number: str | None = None, reason: str = "",
             at: dt.datetime | None = None) -> dict[str, Any]:
    """One read_audit row's values."""
    return {"at": at or utcnow(), "staff_id": actor.id if actor.is_staff else None, "staff_name": actor.name[:100],
            "role": role_of(actor), "endpoint": endpoint[:120], "account_number": account_number or None,
            "phone": normalise_phone(phone), "openid": openid or None, "conversation_id": conversation_id,
            "call_id": call_id, "ticket_number": ticket_number or None, "hits": hits, "reason": reason[:200]}


def record_read(session: AsyncSession, actor: Actor, endpoint: str, *, account_number: str | None = None,
                phone: str | None = None, openid: str | None = None, conversation_id: int | None = None,
                call_id: int | None = None, hits: int = 1, ticket_number: str | None = None,
                reason: str = "", at: dt.datetime | None = None) -> ReadAudit:
    """Add one read of one resident's data to `session`; the caller commits it with whatever else the
    transaction does, so the record and the read stand or fall together."""
    row = ReadAudit(**read_row(actor, endpoint, account_number=account_number, phone=phone, openid=openid,
                               conversation_id=conversation_id, call_id=call_id, hits=hits,
                               ticket_number=ticket_number, reason=reason, at=at))
    session.add(row)
    return row


@dataclass(frozen=True)
class Subject:
    """Whose data one answer showed: an account, a phone, a WeChat user, one conversation or call."""

    account_number: str | None = None
    phone: str | None = None
    openid: str | None = None
    conversation_id: int | None = None
    call_id: int | None = None
    ticket_number: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.account_number or self.phone or self.openid or self.conversation_id or self.call_id
                    or self.ticket_number)


def tally(subjects: Iterable[Subject]) -> dict[Subject, int]:
    """Each distinct subject with how many items of the answer were about it, in first-seen order."""
    counts: dict[Subject, int] = {}
    for s in subjects:
        if not s.empty:
            s = Subject(s.account_number, normalise_phone(s.phone), s.openid, s.conversation_id, s.call_id,
                        s.ticket_number)
            counts[s] = counts.get(s, 0) + 1
    return counts


async def audit_reads(ctx: AppContext, actor: Actor, endpoint: str, subjects: Iterable[Subject],
                      reason: str = "") -> int:
    """Commit one row per distinct subject (hits: its items in the answer) and return how many rows.
    Raises if the store refuses, so the caller's answer is never sent without its record. A plain
    INSERT on a connection, not an ORM session: it is on every read, and costs half the CPU this way."""
    counts = tally(subjects)
    if not counts:
        return 0
    now = ctx.clock()
    rows = [read_row(actor, endpoint, account_number=s.account_number, phone=s.phone, openid=s.openid,
                     conversation_id=s.conversation_id, call_id=s.call_id, hits=hits,
                     ticket_number=s.ticket_number, reason=reason, at=now) for s, hits in counts.items()]
    async with ctx.engine.begin() as conn:
        await conn.execute(insert(ReadAudit), rows[0] if len(rows) == 1 else rows)
    return len(rows)
