"""The dialler's queue in the store (outbound_jobs): what to call, claimed when due, settled when the call ends.

Callback surveys: the callback scheduler hands a telephone task here (one job per
attempt; the task's [callback] attempts and spacing decide whether there is a
next one, and the agents' 回访任务 list takes it when the calls fail for good).
Outage notices: one job per phone per outage, retried by the job itself.
Every write is one short transaction; the SIP work happens outside them.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import Actor
from hotline.callbacks import tasks as callback_tasks
from hotline.config import Config
from hotline.context import AppContext
from models import CallbackTask, Customer, CustomerPhone, Outage, Ticket
from models.call import OutboundJob

log = logging.getLogger(__name__)

DIALLER = Actor(kind="system", name="电话回访")
# The flow's menu labels (ivr_flows/callback.yml `path:`) that are an answer to the survey.
ANSWER_PATHS = {"满意": "satisfied", "基本满意": "basically_satisfied", "不满意": "dissatisfied"}
RETRIED = ("busy", "no_answer", "no_key", "failed")  # tried again; invalid_number and rejected are not
PENDING_ATTEMPT = "queued"


def dialler_enabled(config: Config) -> bool:
    """The dialler runs once it is enabled and has a registrar; until then telephone callbacks go to agents."""
    return config.outbound.enabled and bool(config.outbound.registrar)


def _phone_of(ticket: Ticket) -> str | None:
    phone = (ticket.contact_phone or "").strip().replace("-", "").replace(" ", "")
    return phone if phone.lstrip("+").isdigit() and 3 <= len(phone) <= 20 else None


def callback_by_phone(ctx: AppContext, session: AsyncSession, task: CallbackTask, ticket: Ticket,
                      now: dt.datetime) -> str | None:
    """Queue the next telephone attempt of a callback task (inside the scheduler's claim).

    Returns None when the dialler has it, or the reason it must go to agents instead."""
    cfg = ctx.config.callback
    phone = _phone_of(ticket)
    if phone is None:
        return "工单无有效联系电话，需人工回访"
    calls = [a for a in task.attempts if a.get("channel") == "phone"]
    if calls and calls[-1].get("result") == PENDING_ATTEMPT:
        # The dialler has not reached the last one yet (unregistered, or outside its hours): wait for it.
        task.next_attempt_at = min(now + dt.timedelta(hours=cfg.retry_hours), task.expires_at)
        return None
    if calls and calls[-1].get("result") in ("invalid_number", "rejected"):
        return "电话回访未能接通（号码无效或拒接），需人工回访"
    if len(calls) >= cfg.attempts:
        return f"电话回访{len(calls)}次未获答复，需人工回访"
    task.state = "in_progress"
    callback_tasks.add_attempt(task, "phone", now, PENDING_ATTEMPT)
    task.next_attempt_at = min(now + dt.timedelta(hours=cfg.retry_hours), task.expires_at)
    session.add(OutboundJob(purpose="callback", phone=phone, ticket_id=ticket.id, callback_task_id=task.id,
                            max_attempts=1, next_attempt_at=now, created_at=now))
    callback_tasks.changed(session, task, ticket.number)
    return None


@dataclass
class OutageQueued:
    queued: int
    already: int
    accounts_without_phone: int


async def queue_outage_notice(session: AsyncSession, outage: Outage, attempts: int, now: dt.datetime) -> OutageQueued:
    """Every phone on file for the accounts in the outage's area, once per outage."""
    rows = (await session.execute(
        select(Customer.id, CustomerPhone.phone).outerjoin(CustomerPhone, CustomerPhone.customer_id == Customer.id)
        .where(Customer.area == outage.area))).all()
    without = len({cid for cid, phone in rows} - {cid for cid, phone in rows if phone})
    phones = sorted({p for _, phone in rows if phone and (p := phone.strip()).lstrip("+").isdigit()})
    known = set((await session.execute(select(OutboundJob.phone).where(OutboundJob.outage_id == outage.id)))
                .scalars())
    fresh = [p for p in phones if p not in known]
    for phone in fresh:
        session.add(OutboundJob(purpose="outage_notice", phone=phone, outage_id=outage.id, max_attempts=attempts,
                                next_attempt_at=now, created_at=now))
    return OutageQueued(queued=len(fresh), already=len(phones) - len(fresh), accounts_without_phone=without)


async def claim_due(ctx: AppContext, now: dt.datetime, limit: int) -> list[OutboundJob]:
    """Due jobs, marked dialling in one committed transaction (SKIP LOCKED on PostgreSQL)."""
    if limit <= 0:
        return []
    async with ctx.sessions.begin() as session:
        stmt = (select(OutboundJob).where(OutboundJob.state == "queued", OutboundJob.next_attempt_at <= now)
                .order_by(OutboundJob.next_attempt_at, OutboundJob.id).limit(limit))
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True)
        jobs = list((await session.execute(stmt)).scalars())
        for job in jobs:
            job.state, job.attempts, job.next_attempt_at = "dialling", job.attempts + 1, None
        await session.flush()
        session.expunge_all()
    return jobs


async def postpone_due(ctx: AppContext, now: dt.datetime, until: dt.datetime) -> int:
    """Outside calling hours: every due job waits for the next window."""
    async with ctx.sessions.begin() as session:
        jobs = list((await session.execute(select(OutboundJob).where(
            OutboundJob.state == "queued", OutboundJob.next_attempt_at <= now))).scalars())
        for job in jobs:
            job.next_attempt_at = until
        return len(jobs)


async def requeue_interrupted(ctx: AppContext, now: dt.datetime) -> int:
    """Jobs left dialling by a process that stopped mid-call are due again (one dialler per extension)."""
    async with ctx.sessions.begin() as session:
        jobs = list((await session.execute(select(OutboundJob).where(OutboundJob.state == "dialling"))).scalars())
        for job in jobs:
            job.state, job.next_attempt_at = "queued", now
        return len(jobs)


async def outage_words(ctx: AppContext, outage_id: int) -> tuple[str, dt.datetime] | None:
    """What the notice says (area, title, times, details) and when the outage ends; None when it is gone."""
    from hotline.ivr import speech  # here: speech is the IVR's

    async with ctx.readers() as session:
        outage = await session.get(Outage, outage_id)
    if outage is None:
        return None
    tz = ctx.router.calendar.timezone
    words = ctx.messages("ivr.outage", title=outage.title,
                         starts=speech.month_day_clock(outage.starts_at.astimezone(tz)),
                         ends=speech.month_day_clock(outage.ends_at.astimezone(tz)))
    detail = outage.detail.strip()
    return f"{outage.area}，{words}。{detail}" if detail else f"{outage.area}，{words}。", outage.ends_at


async def callback_words(ctx: AppContext, task_id: int) -> dict[str, str] | None:
    """The survey's words: the ticket number digit by digit and what was done; None when nothing is left to ask."""
    from hotline.ivr import speech

    async with ctx.readers() as session:
        task = await session.get(CallbackTask, task_id)
        if task is None or task.state not in callback_tasks.OPEN_STATES:
            return None
        ticket = await session.get(Ticket, task.ticket_id)
        assert ticket is not None
        note = await callback_tasks.resolution_note(session, ticket.id)
    return {"ticket_spoken": speech.digits(ticket.number.removeprefix("GD")),
            "resolution": note.strip().rstrip("。") or "已处理完毕"}


async def settle(ctx: AppContext, job: OutboundJob, outcome: str, call_id: int | None, now: dt.datetime,
                 answer: str | None = None) -> None:
    """After the call: the job done or due again; a callback task gets the attempt's result, or the answer."""
    async with ctx.sessions.begin() as session:
        current = await session.get(OutboundJob, job.id)
        if current is None:
            return
        current.last_outcome = outcome
        current.state, current.next_attempt_at = "done", None
        if current.purpose == "outage_notice" and outcome in RETRIED and current.attempts < current.max_attempts:
            outage = await session.get(Outage, current.outage_id) if current.outage_id else None
            retry = now + dt.timedelta(hours=ctx.config.callback.retry_hours)
            if outage is not None and retry < outage.ends_at:
                current.state, current.next_attempt_at = "queued", retry
        if current.purpose == "callback" and current.callback_task_id is not None:
            await _callback_result(ctx, session, current.callback_task_id, outcome, call_id, now, answer)


async def _callback_result(ctx: AppContext, session: AsyncSession, task_id: int, outcome: str, call_id: int | None,
                           now: dt.datetime, answer: str | None) -> None:
    task = await session.get(CallbackTask, task_id)
    if task is None:
        return
    ticket = await session.get(Ticket, task.ticket_id)
    assert ticket is not None
    result = outcome if outcome != "answered" else (answer or "no_key")
    attempts = list(task.attempts)
    for i in range(len(attempts) - 1, -1, -1):
        if attempts[i].get("channel") == "phone" and attempts[i].get("result") == PENDING_ATTEMPT:
            attempts[i] = {**attempts[i], "result": result, "call_id": call_id}
            break
    task.attempts = attempts
    if task.state not in callback_tasks.OPEN_STATES:
        return  # answered elsewhere (by an agent, or online) meanwhile
    if answer is not None:
        try:
            await callback_tasks.record_answer(session, ctx.router, task, answer, DIALLER, now,
                                               note=f"{callback_tasks.ANSWER_NOTES[answer]}（电话按键）")
        except callback_tasks.CallbackError as exc:
            log.info("callback task %s: answer not recorded: %s", task_id, exc.message)
        return
    if outcome in ("invalid_number", "rejected"):
        reason = "电话号码无效，需人工核实" if outcome == "invalid_number" else "居民拒接回访电话，需人工回访"
        callback_tasks.hand_to_agents(session, task, ticket.number, reason)
        return
    callback_tasks.changed(session, task, ticket.number)  # tried again at next_attempt_at by the scheduler
