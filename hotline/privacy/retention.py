"""What each retention kind removes once it is due, and the purge that walks it in short batches.

Each kind is one or more passes over a table, in the order of a time column (its index) and id:
a page of ids is read without any lock, then changed in one short write transaction that is
committed before the next page (pages shrink while a write takes longer than [retention]
batch_target_ms, and grow back to batch_size), so the purge of a year of data never holds SQLite's single writer
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

from sqlalchemy import ColumnElement, Executable, Table, delete, func, literal, or_, select, true, tuple_, update
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

MIN_BATCH = 10  # rows: the smallest batch the purge shrinks to
MARGIN = dt.timedelta(days=1)  # a pass starts this long before the last run's cutoff (late writes, clock skew)

Plan = Callable[[AsyncSession, list[int], "PurgeContext"], Awaitable[list[Executable]]]


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
    plan: Plan  # reads what a batch needs (ids given) and returns the statements that change it


@dataclass
class PurgeResult:
    counts: dict[str, int] = field(default_factory=dict)
    cutoffs: dict[str, str] = field(default_factory=dict)
    batches: int = 0
    longest_batch_ms: float = 0.0
    longest_by_pass: dict[str, float] = field(default_factory=dict)  # ms, per pass
    batch_ms: list[float] = field(default_factory=list)  # every batch's write transaction, in order
    files_removed: int = 0


# --- what each pass does -------------------------------------------------------------------------------
#
# A pass's plan reads (no lock) what its batch needs and returns the statements to run; the purge then
# runs them in one short write transaction. Copies in other tables are changed only where the batch
# has any, so the writer runs no statement that would change nothing.

async def _with_rows(session: AsyncSession, fk: Any, ids: list[int]) -> list[int]:
    """The ids among `ids` that have rows in fk's table."""
    return sorted(set((await session.execute(select(fk).where(fk.in_(ids)).distinct())).scalars()))


async def _copies(session: AsyncSession, ids: list[int],
                  changes: list[tuple[Any, Callable[[list[int]], Executable]]]) -> list[Executable]:
    statements = []
    for fk, change in changes:
        having = await _with_rows(session, fk, ids)
        if having:
            statements.append(change(having))
    return statements


async def _plan_messages(session: AsyncSession, ids: list[int], _: PurgeContext) -> list[Executable]:
    return [update(Message).where(Message.id.in_(ids)).values(
        text="", payload={}, channel_message_id=None, delivery_error=None)]


async def plan_conversations(session: AsyncSession, ids: list[int], _: PurgeContext) -> list[Executable]:
    """A conversation without its resident's id, words and the copies of them (slots, events, alerts)."""
    copies = await _copies(session, ids, [
        (Message.conversation_id, lambda having: update(Message).where(Message.conversation_id.in_(having)).values(
            text="", payload={}, channel_message_id=None, delivery_error=None)),
        (ConversationEvent.conversation_id, lambda having: update(ConversationEvent).where(
            ConversationEvent.conversation_id.in_(having)).values(data={})),
        (OpinionAlert.conversation_id, lambda having: update(OpinionAlert).where(
            OpinionAlert.conversation_id.in_(having)).values(excerpt="")),
        (CallbackTask.conversation_id, lambda having: update(CallbackTask).where(
            CallbackTask.conversation_id.in_(having)).values(external_user=None)),
    ])
    return [*copies, update(Conversation).where(Conversation.id.in_(ids)).values(
        external_user="", slots={}, customer_id=None)]


async def plan_recordings(session: AsyncSession, ids: list[int], pctx: PurgeContext) -> list[Executable]:
    """Delete the calls' recording files now, and forget their paths (and the tickets' links to them)."""
    rows = (await session.execute(select(Call.id, Call.recording_path).where(Call.id.in_(ids)))).all()
    for _, path in rows:
        if path and files.remove_under(pctx.var_dir, path):
            pctx.files_removed += 1
    links = [f"call-recording:{call_id}" for call_id, _ in rows]
    return [delete(TicketAttachment).where(TicketAttachment.uri.in_(links)),
            update(Call).where(Call.id.in_(ids)).values(recording_path=None)]


async def plan_calls(session: AsyncSession, ids: list[int], _: PurgeContext) -> list[Executable]:
    """A call record keeps its times, menu path and outcome; the numbers and keyed digits go."""
    outbound = list((await session.execute(select(Call.id).where(
        Call.id.in_(ids), Call.direction == "outbound"))).scalars())
    statements: list[Executable] = [update(Call).where(Call.id.in_(outbound)).values(callee="")] if outbound else []
    return [*statements, update(Call).where(Call.id.in_(ids)).values(caller="", digits="", account_number=None)]


async def plan_tickets(session: AsyncSession, ids: list[int], pctx: PurgeContext) -> list[Executable]:
    """A ticket keeps its business facts (category, business type, department, times, outcome, area);
    its contact, description, attachments, notes and the copies of them elsewhere go."""
    for uri in (await session.execute(select(TicketAttachment.uri).where(
            TicketAttachment.ticket_id.in_(ids)))).scalars():
        if files.remove_under(pctx.var_dir, uri):
            pctx.files_removed += 1
    copies = await _copies(session, ids, [
        (TicketAttachment.ticket_id, lambda having: delete(TicketAttachment).where(
            TicketAttachment.ticket_id.in_(having))),
        (TicketEvent.ticket_id, lambda having: update(TicketEvent).where(TicketEvent.ticket_id.in_(having)).values(
            note="", data={})),
        (CallbackTask.ticket_id, lambda having: update(CallbackTask).where(CallbackTask.ticket_id.in_(having)).values(
            external_user=None, note="")),
        (Notification.ticket_id, lambda having: update(Notification).where(
            Notification.ticket_id.in_(having)).values(message="")),
        (OpinionAlert.ticket_id, lambda having: update(OpinionAlert).where(
            OpinionAlert.ticket_id.in_(having)).values(excerpt="")),
        (Gov12345Order.ticket_id, lambda having: update(Gov12345Order).where(
            Gov12345Order.ticket_id.in_(having)).values(payload={}, history=[], pending_reason=None)),
        (OutboxMessage.ticket_id, lambda having: update(OutboxMessage).where(
            OutboxMessage.ticket_id.in_(having), OutboxMessage.state != "pending").values(payload={})),
    ])
    return [*copies, update(Ticket).where(Ticket.id.in_(ids)).values(
        contact_name="", contact_phone=None, address="", description="", latitude=None, longitude=None,
        account_number=None, customer_id=None, callback_result=None)]


def _deleter(table: Table) -> Plan:
    async def plan(session: AsyncSession, ids: list[int], _: PurgeContext) -> list[Executable]:
        return [delete(table).where(table.c.id.in_(ids))]
    return plan


async def apply_now(session: AsyncSession, plan: Plan, ids: list[int], pctx: PurgeContext) -> int:
    """Plan and change in one (writer) session, as an erasure does; returns the rows asked for."""
    if not ids:
        return 0
    for statement in await plan(session, ids, pctx):
        await session.execute(statement)
    return len(ids)


def passes() -> list[Pass]:
    """Every pass, in the order a purge runs them."""
    messages, conversations = Message.__table__, Conversation.__table__
    calls, tickets = Call.__table__, Ticket.__table__
    found = [
        Pass("conversations", "conversations", conversations, conversations.c.updated_at,  # type: ignore[arg-type]
             lambda: Conversation.external_user != "", plan_conversations),
        Pass("conversations", "messages", messages, messages.c.created_at,  # type: ignore[arg-type]
             lambda: or_(Message.text != "", Message.channel_message_id.is_not(None)), _plan_messages),
        Pass("recordings", "recordings", calls, calls.c.started_at,  # type: ignore[arg-type]
             lambda: Call.recording_path.is_not(None), plan_recordings),
        Pass("call_numbers", "calls", calls, calls.c.started_at,  # type: ignore[arg-type]
             lambda: or_(Call.caller != "", Call.digits != "", Call.account_number.is_not(None)), plan_calls),
        Pass("call_numbers", "outbound_jobs", OutboundJob.__table__,  # type: ignore[arg-type]
             OutboundJob.__table__.c.created_at, lambda: OutboundJob.state == "done",
             _deleter(OutboundJob.__table__)),  # type: ignore[arg-type]
        Pass("nlu_feedback", "nlu_feedback", NluFeedback.__table__,  # type: ignore[arg-type]
             NluFeedback.__table__.c.created_at, true, _deleter(NluFeedback.__table__)),  # type: ignore[arg-type]
        Pass("closed_tickets", "tickets", tickets, tickets.c.closed_at,  # type: ignore[arg-type]
             lambda: (Ticket.status == "closed") & or_(
                 Ticket.contact_name != "", Ticket.contact_phone.is_not(None), Ticket.address != "",
                 Ticket.description != "", Ticket.account_number.is_not(None), Ticket.customer_id.is_not(None)),
             plan_tickets),
    ]
    # What residents asked about and the proofs they gave (models/verification.py): the throttles need an
    # hour of them; they go with the conversations they were part of.
    for name in ("account_lookups", "proof_attempts"):
        throttle = Base.metadata.tables.get(name)
        if throttle is not None and "at" in throttle.c:
            found.append(Pass("conversations", name, throttle, throttle.c.at, true, _deleter(throttle)))
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
        done, size = 0, cfg.batch_size
        while True:
            page = select(p.when, p.table.c.id).where(cond).order_by(p.when, p.table.c.id).limit(size)
            if last is not None:
                page = page.where(key > tuple_(literal(last[0], p.when.type), literal(last[1])))
            async with ctx.readers() as session:
                rows = (await session.execute(page)).all()
                if not rows:
                    break
                ids = [row[1] for row in rows]
                statements = await p.plan(session, ids, pctx)
            last = (rows[-1][0], rows[-1][1])
            started = time.perf_counter()
            async with ctx.sessions.begin() as session:
                for statement in statements:
                    await session.execute(statement)
            changed = len(ids)
            elapsed = (time.perf_counter() - started) * 1000
            # Keep each write near the target whatever the rows cost (indexes, copies, a busy machine).
            if elapsed > cfg.batch_target_ms:
                size = max(min(MIN_BATCH, cfg.batch_size), size // 2)
            elif elapsed < cfg.batch_target_ms / 2:
                size = min(cfg.batch_size, size * 2)
            result.batches += 1
            result.batch_ms.append(elapsed)
            result.longest_batch_ms = max(result.longest_batch_ms, elapsed)
            result.longest_by_pass[p.name] = round(max(result.longest_by_pass.get(p.name, 0.0), elapsed), 1)
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
