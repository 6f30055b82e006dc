"""What each retention kind removes once it is due, and the purge that walks it in short batches.

Each kind is one or more passes over a table, in the order of a time column (its index) and id:
a page of ids is read without any lock, then changed in one short write transaction that is
committed before the next page, so the purge of a year of data never holds SQLite's single writer
(or PostgreSQL's row locks) for more than one batch. A purge remembers each pass's cutoff in its
`privacy_runs` row; the next one starts a day before it rather than at the beginning of time, so a
daily run reads one day's worth of rows.

Anonymizing keeps rows and their business facts (when, which channel, who handled it, category,
department, outcome, area) and removes what tells who the resident was and what they said.
Deleting is kept for data with no value once personal content is gone (NLU feedback, the read
audit, the bot's tracker events).
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, func, literal, or_, select, true, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.context import AppContext
from hotline.privacy import files, tracker
from models import (
    Call,
    CallbackTask,
    Conversation,
    ConversationEvent,
    Gov12345Order,
    Message,
    Notification,
    OpinionAlert,
    OutboxMessage,
    Ticket,
    TicketAttachment,
    TicketEvent,
)
from models.base import Base
from models.call import OutboundJob
from models.nlu_feedback import NluFeedback

log = logging.getLogger(__name__)

MARGIN = dt.timedelta(days=1)  # a pass starts this long before the last run's cutoff (late writes, clock skew)

Apply = Callable[[AsyncSession, list[int], "PurgeContext"], Awaitable[int]]


@dataclass
class PurgeContext:
    var_dir: Path
    files_removed: int = 0


@dataclass(frozen=True)
class Pass:
    """One walk over one table for one retention kind."""

    kind: str  # the [retention] kind whose days apply
    name: str  # what the counts call it
    table: Table
    when: Any  # the time column the pass walks (indexed)
    due: Callable[[], ColumnElement[bool]]  # rows that still hold personal data
    apply: Apply  # changes those rows (ids given); returns rows changed


@dataclass
class PurgeResult:
    counts: dict[str, int] = field(default_factory=dict)
    cutoffs: dict[str, str] = field(default_factory=dict)
    batches: int = 0
    longest_batch_ms: float = 0.0
    files_removed: int = 0


# --- what each pass does -------------------------------------------------------------------------------

async def _blank_messages(session: AsyncSession, ids: list[int], _: PurgeContext) -> int:
    result = await session.execute(update(Message).where(Message.id.in_(ids)).values(
        text="", payload={}, channel_message_id=None, delivery_error=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def anonymize_conversations(session: AsyncSession, ids: list[int], _: PurgeContext | None = None) -> int:
    """A conversation without its resident's id, words and the copies of them (slots, events, alerts)."""
    await session.execute(update(Message).where(Message.conversation_id.in_(ids)).values(
        text="", payload={}, channel_message_id=None, delivery_error=None))
    await session.execute(update(ConversationEvent).where(ConversationEvent.conversation_id.in_(ids))
                          .values(data={}))
    await session.execute(update(OpinionAlert).where(OpinionAlert.conversation_id.in_(ids)).values(excerpt=""))
    await session.execute(update(CallbackTask).where(CallbackTask.conversation_id.in_(ids))
                          .values(external_user=None))
    result = await session.execute(update(Conversation).where(Conversation.id.in_(ids)).values(
        external_user="", slots={}, customer_id=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def remove_recordings(session: AsyncSession, ids: list[int], pctx: PurgeContext) -> int:
    """Delete the calls' recording files, then forget their paths (and the tickets' links to them)."""
    rows = (await session.execute(select(Call.id, Call.recording_path).where(Call.id.in_(ids)))).all()
    for _, path in rows:
        if path and files.remove_under(pctx.var_dir, path):
            pctx.files_removed += 1
    await session.execute(delete(TicketAttachment).where(
        TicketAttachment.uri.in_([f"call-recording:{call_id}" for call_id, _ in rows])))
    result = await session.execute(update(Call).where(Call.id.in_(ids)).values(recording_path=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def anonymize_calls(session: AsyncSession, ids: list[int], _: PurgeContext | None = None) -> int:
    """A call record keeps its times, menu path and outcome; the numbers and keyed digits go."""
    await session.execute(update(Call).where(Call.id.in_(ids), Call.direction == "outbound").values(callee=""))
    result = await session.execute(update(Call).where(Call.id.in_(ids)).values(
        caller="", digits="", account_number=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def _delete_outbound_jobs(session: AsyncSession, ids: list[int], _: PurgeContext) -> int:
    result = await session.execute(delete(OutboundJob).where(OutboundJob.id.in_(ids)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def anonymize_tickets(session: AsyncSession, ids: list[int], pctx: PurgeContext | None = None) -> int:
    """A ticket keeps its business facts (category, business type, department, times, outcome, area);
    its contact, description, attachments, notes and the copies of them elsewhere go."""
    attachments = (await session.execute(select(TicketAttachment.uri).where(
        TicketAttachment.ticket_id.in_(ids)))).scalars().all()
    if pctx is not None:
        for uri in attachments:
            if files.remove_under(pctx.var_dir, uri):
                pctx.files_removed += 1
    await session.execute(delete(TicketAttachment).where(TicketAttachment.ticket_id.in_(ids)))
    await session.execute(update(TicketEvent).where(TicketEvent.ticket_id.in_(ids)).values(note="", data={}))
    await session.execute(update(CallbackTask).where(CallbackTask.ticket_id.in_(ids)).values(
        external_user=None, note=""))
    await session.execute(update(Notification).where(Notification.ticket_id.in_(ids)).values(message=""))
    await session.execute(update(OpinionAlert).where(OpinionAlert.ticket_id.in_(ids)).values(excerpt=""))
    await session.execute(update(Gov12345Order).where(Gov12345Order.ticket_id.in_(ids)).values(
        payload={}, history=[], pending_reason=None))
    await session.execute(update(OutboxMessage).where(OutboxMessage.ticket_id.in_(ids),
                                                      OutboxMessage.state != "pending").values(payload={}))
    result = await session.execute(update(Ticket).where(Ticket.id.in_(ids)).values(
        contact_name="", contact_phone=None, address="", description="", latitude=None, longitude=None,
        account_number=None, customer_id=None, callback_result=None))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def _deleter(table: Table) -> Apply:
    async def apply(session: AsyncSession, ids: list[int], _: PurgeContext) -> int:
        result = await session.execute(delete(table).where(table.c.id.in_(ids)))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
    return apply


def passes() -> list[Pass]:
    """Every pass, in the order a purge runs them."""
    messages, conversations = Message.__table__, Conversation.__table__
    calls, tickets = Call.__table__, Ticket.__table__
    found = [
        Pass("conversations", "conversations", conversations, conversations.c.updated_at,  # type: ignore[arg-type]
             lambda: Conversation.external_user != "", anonymize_conversations),
        Pass("conversations", "messages", messages, messages.c.created_at,  # type: ignore[arg-type]
             lambda: or_(Message.text != "", Message.channel_message_id.is_not(None)), _blank_messages),
        Pass("recordings", "recordings", calls, calls.c.started_at,  # type: ignore[arg-type]
             lambda: Call.recording_path.is_not(None), remove_recordings),
        Pass("call_numbers", "calls", calls, calls.c.started_at,  # type: ignore[arg-type]
             lambda: or_(Call.caller != "", Call.digits != "", Call.account_number.is_not(None)), anonymize_calls),
        Pass("call_numbers", "outbound_jobs", OutboundJob.__table__,  # type: ignore[arg-type]
             OutboundJob.__table__.c.created_at, lambda: OutboundJob.state == "done", _delete_outbound_jobs),
        Pass("nlu_feedback", "nlu_feedback", NluFeedback.__table__,  # type: ignore[arg-type]
             NluFeedback.__table__.c.created_at, true, _deleter(NluFeedback.__table__)),  # type: ignore[arg-type]
        Pass("closed_tickets", "tickets", tickets, tickets.c.closed_at,  # type: ignore[arg-type]
             lambda: (Ticket.status == "closed") & or_(
                 Ticket.contact_name != "", Ticket.contact_phone.is_not(None), Ticket.address != "",
                 Ticket.description != "", Ticket.account_number.is_not(None), Ticket.customer_id.is_not(None)),
             anonymize_tickets),
    ]
    audit = Base.metadata.tables.get("read_audit")  # the read audit's table (models/audit.py)
    if audit is not None:
        found.append(Pass("read_audit", "read_audit", audit, audit.c.at, true, _deleter(audit)))
    return found


# --- the purge -------------------------------------------------------------------------------------------

def cutoff(now: dt.datetime, days: int) -> dt.datetime:
    return now - dt.timedelta(days=days)


def _window(p: Pass, until: dt.datetime, since: dt.datetime | None) -> ColumnElement[bool]:
    cond = (p.when < until) & p.due()
    if since is not None:
        cond = cond & (p.when >= since)
    return cond


async def due_counts(ctx: AppContext, now: dt.datetime, since: dict[str, str] | None = None) -> dict[str, int]:
    """What a purge at `now` would remove or anonymize, per pass (a dry run)."""
    cfg = ctx.config.retention
    counts: dict[str, int] = {}
    async with ctx.readers() as session:
        for p in passes():
            days = cfg.days(p.kind)
            if not days:
                continue
            start = _since(since, p.name)
            counts[p.name] = int((await session.execute(
                select(func.count()).select_from(p.table).where(_window(p, cutoff(now, days), start)))).scalar_one())
    if cfg.tracker_days:
        counts["tracker_events"] = await tracker.count_before(ctx, cutoff(now, cfg.tracker_days))
    return counts


def _since(since: dict[str, str] | None, name: str) -> dt.datetime | None:
    if not since or name not in since:
        return None
    return dt.datetime.fromisoformat(since[name]) - MARGIN


async def purge(ctx: AppContext, now: dt.datetime, since: dict[str, str] | None = None,
                on_batch: Callable[[str, int], None] | None = None) -> PurgeResult:
    """Remove or anonymize everything due at `now`, one committed batch at a time.

    `since`: the cutoffs of the last successful purge (the pass starts a day before each);
    `on_batch(name, rows)` hears each committed batch (metrics)."""
    cfg = ctx.config.retention
    result = PurgeResult()
    pctx = PurgeContext(ctx.config.var_dir)
    for p in passes():
        days = cfg.days(p.kind)
        if not days:
            continue
        until = cutoff(now, days)
        result.cutoffs[p.name] = until.isoformat()
        cond = _window(p, until, _since(since, p.name))
        key = tuple_(p.when, p.table.c.id)
        last: tuple[Any, int] | None = None
        done = 0
        while True:
            page = select(p.when, p.table.c.id).where(cond).order_by(p.when, p.table.c.id).limit(cfg.batch_size)
            if last is not None:
                page = page.where(key > tuple_(literal(last[0], p.when.type), literal(last[1])))
            async with ctx.readers() as session:
                rows = (await session.execute(page)).all()
            if not rows:
                break
            ids = [row[1] for row in rows]
            last = (rows[-1][0], rows[-1][1])
            started = time.perf_counter()
            async with ctx.sessions.begin() as session:
                changed = await p.apply(session, ids, pctx)
            elapsed = (time.perf_counter() - started) * 1000
            result.batches += 1
            result.longest_batch_ms = max(result.longest_batch_ms, elapsed)
            done += changed
            if on_batch is not None:
                on_batch(p.name, changed)
        result.counts[p.name] = done
    if cfg.tracker_days:
        until = cutoff(now, cfg.tracker_days)
        result.cutoffs["tracker_events"] = until.isoformat()
        await tracker.reset_idle(ctx, _since(since, "tracker_events"), until)
        removed, longest = await tracker.purge_before(ctx, until, cfg.batch_size)
        result.counts["tracker_events"] = removed
        result.longest_batch_ms = max(result.longest_batch_ms, longest)
        if on_batch is not None and removed:
            on_batch("tracker_events", removed)
    result.files_removed = pctx.files_removed
    return result
