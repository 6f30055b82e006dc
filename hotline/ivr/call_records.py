"""The one door for call records (the `calls` table): a call begins, ends, or is refused before the menu.

Each writes its row and queues a live event (`call.started`, `call.ended`) that
consoles hear only after the transaction commits, like tickets and
conversations. The IVR's inbound calls and the outbound dialler both come here:
an outbound call is `dialled` (its row, direction outbound, with its purpose and
what it is about) before the INVITE leaves; `begin` marks it answered when the
flow starts, `end` closes it as answered with the keys pressed, and `unanswered`
closes one that never was (busy, no_answer, rejected, invalid_number, failed).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hotline.context import AppContext
from hotline.events import publish_on_commit
from models import Call

log = logging.getLogger(__name__)

# What an outbound call came to (calls.outcome where direction = outbound).
OUTBOUND_OUTCOMES: tuple[str, ...] = ("answered", "busy", "no_answer", "rejected", "invalid_number", "failed")


@dataclass
class CallResult:
    """What a call came to, written when it ends."""

    outcome: str | None
    menu_path: list[str] = field(default_factory=list)
    digits: str = ""
    account_number: str | None = None
    ticket_id: int | None = None
    recording_path: str | None = None


def _event(kind: str, call: Call) -> dict[str, object]:
    return {"type": kind, "call_id": call.id, "caller": call.caller, "callee": call.callee,
            "outcome": call.outcome, "ticket_id": call.ticket_id, "direction": call.direction or "inbound",
            "purpose": call.purpose, "at": (call.ended_at or call.started_at).isoformat()}


async def dialled(ctx: AppContext, *, sip_call_id: str, caller: str, callee: str, purpose: str,
                  ticket_id: int | None, outage_id: int | None, callback_task_id: int | None,
                  now: dt.datetime) -> int:
    """An outbound call about to be placed: its row exists before the INVITE, so every attempt is recorded."""
    async with ctx.sessions.begin() as session:
        call = Call(sip_call_id=sip_call_id[:255], caller=caller[:64], callee=callee[:64], started_at=now,
                    direction="outbound", purpose=purpose, ticket_id=ticket_id, outage_id=outage_id,
                    callback_task_id=callback_task_id)
        session.add(call)
        await session.flush()
        publish_on_commit(session, _event("call.started", call))
        return call.id


async def unanswered(ctx: AppContext, call_id: int, outcome: str, sip_status: int | None,
                     now: dt.datetime) -> None:
    """An outbound call that was never answered (busy, no_answer, rejected, invalid_number, failed)."""
    assert outcome in OUTBOUND_OUTCOMES and outcome != "answered", outcome
    async with ctx.sessions.begin() as session:
        call = await session.get(Call, call_id)
        if call is None:
            return
        call.ended_at, call.outcome, call.sip_status = now, outcome, sip_status
        publish_on_commit(session, _event("call.ended", call))


async def begin(ctx: AppContext, *, sip_call_id: str, caller: str, callee: str, now: dt.datetime) -> int:
    """An answered call: its row, before the first prompt is played (an outbound one's row is marked answered)."""
    async with ctx.sessions.begin() as session:
        placed = (await session.execute(select(Call).where(Call.sip_call_id == sip_call_id[:255],
                                                           Call.direction == "outbound"))).scalar_one_or_none()
        if placed is not None:
            placed.answered_at, placed.sip_status = now, 200
            return placed.id
        call = Call(sip_call_id=sip_call_id[:255], caller=caller[:64], callee=callee[:64], started_at=now,
                    answered_at=now)
        session.add(call)
        await session.flush()
        publish_on_commit(session, _event("call.started", call))
        return call.id


async def end(ctx: AppContext, call_id: int, result: CallResult, now: dt.datetime) -> None:
    async with ctx.sessions.begin() as session:
        call = await session.get(Call, call_id)
        if call is None:
            return
        call.ended_at = now
        call.menu_path, call.digits = result.menu_path, result.digits[-255:]
        if call.direction == "outbound":  # answered; what the resident pressed is in digits and menu_path
            call.outcome = "answered"
        else:
            call.account_number, call.outcome = result.account_number, result.outcome
            call.ticket_id, call.recording_path = result.ticket_id, result.recording_path
        publish_on_commit(session, _event("call.ended", call))


async def refused(ctx: AppContext, *, sip_call_id: str, caller: str, callee: str, outcome: str,
                  now: dt.datetime) -> None:
    """A call that never reached the menu (no SDP, no common codec, cancelled while ringing)."""
    try:
        async with ctx.sessions.begin() as session:
            call = Call(sip_call_id=sip_call_id[:255], caller=caller[:64], callee=callee[:64], started_at=now,
                        ended_at=now, outcome=outcome)
            session.add(call)
            await session.flush()
            publish_on_commit(session, _event("call.ended", call))
    except IntegrityError:  # the same Call-ID seen before: nothing more to record
        log.info("call %s not recorded again", sip_call_id)
