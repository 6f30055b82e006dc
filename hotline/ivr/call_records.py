"""The one door for call records (the `calls` table): a call begins, ends, or is refused before the menu.

Each writes its row and queues a live event (`call.started`, `call.ended`) that
consoles hear only after the transaction commits, like tickets and
conversations. The IVR's inbound calls and the outbound dialler both come here.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError

from hotline.context import AppContext
from hotline.events import publish_on_commit
from models import Call

log = logging.getLogger(__name__)


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
            "outcome": call.outcome, "ticket_id": call.ticket_id,
            "at": (call.ended_at or call.started_at).isoformat()}


async def begin(ctx: AppContext, *, sip_call_id: str, caller: str, callee: str, now: dt.datetime) -> int:
    """An answered call: its row, before the first prompt is played."""
    async with ctx.sessions.begin() as session:
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
