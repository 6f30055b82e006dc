"""After commit: what residents hear of incidents and outages, and the detection of each new report.

Detection runs off the committed `ticket.changed` (create) event, in its own
transaction, so a report is never slowed or lost by it; two reports at once
cannot raise two incidents (a ticket belongs to one incident; the loser retries
and links to the winner's).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from hotline.context import AppContext
from hotline.conversations import service
from hotline.health import track_job
from hotline.incidents import doors
from models import Conversation, Customer, Incident, Outage, OutageArea, Ticket, WechatBinding

log = logging.getLogger(__name__)


def _when(ctx: AppContext, moment: dt.datetime | None) -> str:
    if moment is None:
        return "尽快"
    local = moment.astimezone(ctx.router.calendar.timezone)
    return f"{local.month}月{local.day}日{local:%H:%M}"


async def tell_reporters(ctx: AppContext, incident_id: int, ticket_ids: list[int] | None = None) -> int:
    """Residents whose reports are linked to an active incident hear that it is known, and when supply
    is expected back. Returns how many were told."""
    async with ctx.readers() as session:
        incident = await session.get(Incident, incident_id)
        if incident is None or incident.status != "active":
            return 0
        reports = await doors.reports_of(session, incident_id)
    notices = [(t.conversation_id, ctx.messages(
        "incident.known", title=incident.title, text=incident.text or incident.title,
        restore=_when(ctx, incident.expected_restore_at), ticket=t.number))
        for t in reports if t.conversation_id and (ticket_ids is None or t.id in ticket_ids)]
    await service.tell_many(ctx, [(c, text) for c, text in notices if c is not None])
    return len(notices)


async def tell_area(ctx: AppContext, outage_id: int, action: str) -> int:
    """Residents bound to accounts in the outage's areas hear it was published, extended or ended
    (on their WeChat conversation). Returns how many were told."""
    key = {"publish": "incident.outage_published", "extend": "incident.outage_extended",
           "shorten": "incident.outage_extended", "end": "incident.outage_ended"}.get(action)
    if key is None:
        return 0
    async with ctx.readers() as session:
        outage = await session.get(Outage, outage_id)
        if outage is None:
            return 0
        areas = await doors.outage_areas(session, outage)
        openids = select(WechatBinding.openid).join(Customer, Customer.id == WechatBinding.customer_id).where(
            Customer.area.in_(areas))
        latest = (select(func.max(Conversation.id)).where(Conversation.channel == "wechat",
                                                           Conversation.external_user.in_(openids))
                  .group_by(Conversation.external_user))
        conversations = list((await session.execute(latest)).scalars())
    text = ctx.messages(key, areas="、".join(areas), title=outage.title, detail=outage.detail or "",
                        starts=_when(ctx, outage.starts_at), ends=_when(ctx, outage.ends_at))
    await service.tell_many(ctx, [(conv_id, text) for conv_id in conversations])
    return len(conversations)


async def detect_report(ctx: AppContext, ticket_id: int) -> None:
    for _ in range(3):
        try:
            async with ctx.sessions.begin() as session:
                ticket = await session.get(Ticket, ticket_id)
                if ticket is None:
                    return
                incident, _raised = await doors.detect(session, ctx.router, ctx.incident_rules, ticket, ctx.clock())
                active = incident is not None and incident.status == "active"
                incident_id = incident.id if incident is not None else None
            break
        except IntegrityError:  # another report raised or linked the same cluster at this moment
            continue
    else:
        raise RuntimeError(f"incident detection gave up for ticket {ticket_id} after 3 conflicts")
    if active and incident_id is not None:
        await tell_reporters(ctx, incident_id, [ticket_id])


def subscribe(ctx: AppContext) -> None:
    """Each new report is looked at once, in the process that created it; detections that keep failing
    show incident detection as down in /healthz."""
    tasks: set[asyncio.Task[Any]] = set()
    runs = track_job(ctx, "incident_detection", log=log)

    async def detect(ticket_id: int) -> None:
        with runs.attempt():
            await detect_report(ctx, ticket_id)

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") != "ticket.changed" or event.get("action") != "create":
            return
        task = asyncio.get_running_loop().create_task(detect(int(event["ticket_id"])))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    ctx.bus.subscribe(on_event)


async def areas_known(ctx: AppContext) -> list[str]:
    """The customer archive's areas, for the console's outage form."""
    async with ctx.readers() as session:
        found = set((await session.execute(select(Customer.area).distinct())).scalars())
        found |= set((await session.execute(select(OutageArea.area).distinct())).scalars())
    return sorted(found | set(ctx.incident_rules.spec.areas))
