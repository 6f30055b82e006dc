"""The one door for callback tasks: an answer, an unclear reply, a task handed to agents, an expiry.

Each runs inside the caller's transaction; ticket changes go through the
lifecycle's door (`transition`), so the callback, the close or the reopen are
audited and published like any other change.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import Actor
from hotline.errors import Refused
from hotline.events import publish_on_commit
from hotline.tickets import lifecycle
from hotline.tickets.routing import Router
from models import CallbackTask, Ticket, TicketEvent

OPEN_STATES = ("pending", "in_progress")
ANSWER_NOTES = {"satisfied": "回访：满意", "basically_satisfied": "回访：基本满意", "dissatisfied": "回访：不满意",
                "unreachable": "回访：未联系上"}


class CallbackError(Refused):
    """Refused by this door; the API answers with its status (hotline/api/middleware.py)."""


def changed(session: AsyncSession, task: CallbackTask, ticket_number: str) -> None:
    publish_on_commit(session, {"type": "callback.changed", "task_id": task.id, "ticket": ticket_number,
                                "state": task.state, "manual": task.manual, "result": task.result})


def add_attempt(task: CallbackTask, channel: str, now: dt.datetime, result: str) -> None:
    task.attempts = [*task.attempts, {"channel": channel, "at": now.isoformat(), "result": result}]


async def survey_waiting_for(session: AsyncSession, channel: str, user: str) -> CallbackTask | None:
    """The survey a resident was asked on this channel and has not answered yet, the latest first."""
    return (await session.execute(select(CallbackTask).where(
        CallbackTask.resident_channel == channel, CallbackTask.external_user == user,
        CallbackTask.state.in_(OPEN_STATES), CallbackTask.asked_at.is_not(None))
        .order_by(CallbackTask.asked_at.desc()).limit(1))).scalar_one_or_none()


async def recently_answered(session: AsyncSession, channel: str, user: str, since: dt.datetime) -> CallbackTask | None:
    """A survey this resident answered lately: a second answer changes nothing (it is kept as a message)."""
    return (await session.execute(select(CallbackTask).where(
        CallbackTask.resident_channel == channel, CallbackTask.external_user == user,
        CallbackTask.answered_at > since).order_by(CallbackTask.answered_at.desc()).limit(1))).scalar_one_or_none()


async def resolution_note(session: AsyncSession, ticket_id: int) -> str:
    """What was done: the note of the ticket's last resolve."""
    return (await resolution_notes(session, [ticket_id])).get(ticket_id, "")


async def resolution_notes(session: AsyncSession, ticket_ids: list[int]) -> dict[int, str]:
    """What was done, for many tickets in one query: the note of each one's last resolve."""
    notes: dict[int, str] = {}
    rows = await session.execute(select(TicketEvent.ticket_id, TicketEvent.note).where(
        TicketEvent.ticket_id.in_(ticket_ids), TicketEvent.action == "resolve").order_by(TicketEvent.id))
    for ticket_id, note in rows:
        notes[ticket_id] = note  # later resolves overwrite earlier ones
    return notes


async def _ticket(session: AsyncSession, task: CallbackTask) -> Ticket:
    stmt = select(Ticket).where(Ticket.id == task.ticket_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return (await session.execute(stmt)).scalar_one()


async def record_answer(session: AsyncSession, router: Router, task: CallbackTask, answer: str, actor: Actor,
                        now: dt.datetime, note: str = "", expired: bool = False) -> Ticket:
    """satisfied / basically_satisfied → callback and close (归档); dissatisfied → callback and reopen (重办),
    chased at once; unreachable → callback (not reached) and close; the task is settled either way."""
    if task.state not in OPEN_STATES:
        raise CallbackError(409, "answered", "this callback has been recorded already")
    ticket = await _ticket(session, task)
    if ticket.status != "resolved" or ticket.reopen_count != task.resolution:
        # Someone settled this resolution by hand meanwhile: the task has nothing left to do.
        task.state, task.result, task.next_attempt_at, task.manual = "expired", None, None, False
        task.note = "工单已另行处理"
        changed(session, task, ticket.number)
        return ticket
    note = note.strip() or ANSWER_NOTES[answer]
    reached = answer != "unreachable"
    await lifecycle.transition(session, router, ticket, "callback", actor, now, note=note, reached=reached,
                               satisfaction=lifecycle.ANSWER_SATISFACTION.get(answer), result=answer)
    if expired:
        task.state = "expired"
    if answer == "dissatisfied":
        await lifecycle.transition(session, router, ticket, "reopen", actor, now, note=note)
        lifecycle.escalate_reopened(session, router, ticket, now)
    else:
        await lifecycle.transition(session, router, ticket, "close", actor, now)
    changed(session, task, ticket.number)
    return ticket


def record_unclear(session: AsyncSession, task: CallbackTask, ticket_number: str, now: dt.datetime) -> None:
    """Asked twice without a usable answer: recorded as unclear, and an agent phones the resident."""
    task.result, task.manual, task.next_attempt_at = "unclear", True, task.expires_at
    task.answered_at = now
    changed(session, task, ticket_number)


def hand_to_agents(session: AsyncSession, task: CallbackTask, ticket_number: str, reason: str) -> None:
    """The task goes to the console's 回访任务 list; it stays open until an agent records it or it expires."""
    task.state, task.manual, task.next_attempt_at = "in_progress", True, task.expires_at
    task.note = reason
    changed(session, task, ticket_number)


def task_json(task: CallbackTask, ticket: Ticket) -> dict[str, Any]:
    return {"id": task.id, "ticket": ticket.number, "ticket_status": ticket.status, "channel": task.channel,
            "resident_channel": task.resident_channel, "conversation_id": task.conversation_id,
            "due_at": task.due_at.isoformat(), "expires_at": task.expires_at.isoformat(), "state": task.state,
            "manual": task.manual, "attempts": task.attempts, "result": task.result,
            "answered_at": task.answered_at.isoformat() if task.answered_at else None,
            "answered_by": task.answered_by, "note": task.note, "contact_phone": ticket.contact_phone,
            "contact_name": ticket.contact_name, "business_type": ticket.business_type,
            "resolution": ticket.callback_result or "", "resolved_at": ticket.resolved_at.isoformat()
            if ticket.resolved_at else None}
