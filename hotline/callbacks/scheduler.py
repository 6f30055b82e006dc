"""The callback scheduler: one task beside the escalation scheduler that carries out due callbacks.

A due task is claimed (FOR UPDATE SKIP LOCKED on PostgreSQL, so several
processes never carry out one task twice), and its attempt is recorded and
committed before anything reaches the resident: a crash after the commit loses
one message, never sends two. Nothing goes out outside calling hours; a task
due while the service was down is carried out once when it is back.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import SYSTEM
from hotline.callbacks import links
from hotline.callbacks import tasks as callback_tasks
from hotline.channels import registry as channels
from hotline.config_checks import time_window
from hotline.context import AppContext
from hotline.conversations import service
from hotline.health import JobRuns
from hotline.ivr.outbound import jobs as outbound_jobs
from models import CallbackTask, Ticket

log = logging.getLogger(__name__)


def calling_window(spec: str, setting: str = "[callback] calling_hours") -> tuple[dt.time, dt.time]:
    """"08:00-21:00" → (08:00, 21:00), Beijing time; "00:00-24:00" is the whole day. Checked when the
    configuration loads (hotline/config_checks.py), so a bad one never reaches a sweep."""
    return time_window(spec, setting)


def next_calling_time(now: dt.datetime, window: tuple[dt.time, dt.time], tz: dt.tzinfo) -> dt.datetime:
    """Now, when inside the calling hours; otherwise when they next begin."""
    local = now.astimezone(tz)
    start, end = window
    if start <= local.time() < end:
        return now
    day = local.date() if local.time() < start else local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, start, tzinfo=tz).astimezone(dt.UTC)


@dataclass
class Survey:
    """A survey message to send after the claim has committed."""

    task_id: int
    conversation_id: int
    ticket: str
    text: str
    resident: str


async def sweep(ctx: AppContext, now: dt.datetime, batch: int = 500) -> int:
    """Carry out every callback task due at `now`; returns how many tasks were handled."""
    cfg = ctx.config.callback
    # Once per sweep: `now` and the channels do not change while it runs.
    calling_from = next_calling_time(now, calling_window(cfg.calling_hours), ctx.router.calendar.timezone)
    conversational = {i.name for i in channels.infos() if i.conversations}
    handled = 0
    while True:
        surveys: list[Survey] = []
        async with ctx.sessions.begin() as session:
            stmt = (select(CallbackTask).where(CallbackTask.next_attempt_at <= now)
                    .order_by(CallbackTask.next_attempt_at, CallbackTask.id).limit(batch))
            if session.get_bind().dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            due = list((await session.execute(stmt)).scalars())
            tickets = {t.id: t for t in (await session.execute(
                select(Ticket).where(Ticket.id.in_({task.ticket_id for task in due})))).scalars()}
            notes = await callback_tasks.resolution_notes(session, list(tickets))
            for task in due:
                ticket = tickets[task.ticket_id]
                if now >= task.expires_at:
                    if task.state in callback_tasks.OPEN_STATES:
                        await callback_tasks.record_answer(session, ctx.router, task, "unreachable", SYSTEM, now,
                                                           note="回访期限内未联系上居民", expired=True)
                    task.next_attempt_at = None
                    continue
                if calling_from > now:
                    task.next_attempt_at = min(calling_from, task.expires_at)
                    continue
                survey = _attempt(ctx, session, task, ticket, notes.get(ticket.id, ""), conversational, now)
                if survey is not None:
                    surveys.append(survey)
            handled += len(due)
        if surveys:
            await _send(ctx, surveys, now)
        if len(due) < batch:
            return handled


def _attempt(ctx: AppContext, session: AsyncSession, task: CallbackTask, ticket: Ticket, resolution: str,
             conversational: set[str], now: dt.datetime) -> Survey | None:
    """Record the next attempt on the resident's channel, or hand the task to agents."""
    cfg = ctx.config.callback
    automatic = [a for a in task.attempts if a.get("channel") not in ("agent", "phone")]
    if task.manual:
        task.next_attempt_at = task.expires_at  # waiting for an agent; expiry is what remains to watch
        return None
    online = (task.resident_channel in conversational and task.conversation_id is not None
              and task.external_user is not None)
    if not online or len(automatic) >= cfg.attempts:
        # The telephone: the outbound dialler calls when it is configured; otherwise, or when its calls
        # fail for good, an agent phones the resident (回访任务).
        reason = f"{cfg.attempts}次回访未获答复，需电话回访" if online else "居民无在线渠道，需电话回访"
        if outbound_jobs.dialler_enabled(ctx.config):
            reason = outbound_jobs.callback_by_phone(ctx, session, task, ticket, now) or ""
        if reason:
            callback_tasks.hand_to_agents(session, task, ticket.number, reason)
        return None
    assert task.resident_channel is not None and task.conversation_id is not None and task.external_user is not None
    task.state, task.asked_at, task.reasks = "in_progress", now, 0
    callback_tasks.add_attempt(task, task.resident_channel, now, "sent")
    retry = now + dt.timedelta(hours=cfg.retry_hours)
    task.next_attempt_at = min(retry, task.expires_at)
    callback_tasks.changed(session, task, ticket.number)
    text = ctx.messages("callback.survey", ticket=ticket.number, resolution=resolution or "已处理完毕")
    return Survey(task.id, task.conversation_id, ticket.number, text, task.external_user)


async def _send(ctx: AppContext, surveys: list[Survey], now: dt.datetime) -> None:
    """After commit: each survey on its resident's conversation (all at once); outside WeChat's 48-hour
    window, the template message with a signed link to the same survey instead."""
    messages = await service.tell_many(ctx, [(s.conversation_id, s.text) for s in surveys])
    by_conversation = {m.conversation_id: m for m in messages}
    results: dict[int, str] = {}
    for survey in surveys:
        msg = by_conversation.get(survey.conversation_id)
        # sent; stored (a web resident not online: they see it when they come back); failed
        result = "failed" if msg is None else {"delivered": "sent"}.get(msg.delivery_status, msg.delivery_status)
        if result == "failed" and msg is not None and (msg.delivery_error or "").startswith("45015"):
            send_template = getattr(ctx.channels.get("wechat"), "send_survey_template", None)
            if send_template is not None:
                url = links.survey_url(ctx, survey.task_id, now)
                result = "template_sent" if await send_template(survey.resident, survey.ticket, url) else "failed"
        if result != "sent":
            results[survey.task_id] = result
    if results:
        async with ctx.sessions.begin() as session:
            for task in (await session.execute(select(CallbackTask).where(
                    CallbackTask.id.in_(results)))).scalars():
                if task.attempts:
                    task.attempts = [*task.attempts[:-1], {**task.attempts[-1], "result": results[task.id]}]


async def run_scheduler(ctx: AppContext, runs: JobRuns | None = None) -> None:
    """Look for due callbacks every [callback] interval_seconds, for as long as the service runs.

    A bad row or a database hiccup must not end the scheduler: a failed sweep is retried, and
    counted in `runs`, so sweeps that keep failing show the callbacks as down in /healthz."""
    interval = ctx.config.callback.interval_seconds
    runs = runs or JobRuns("callbacks", log=log)
    while True:
        with runs.attempt():
            count = await sweep(ctx, ctx.clock())
            if count:
                log.info("callbacks: %d task(s) handled", count)
        await asyncio.sleep(interval)
