"""POST /api/outages/{id}/notify_calls: telephone the residents of a planned outage's area (停水电话通知).

The console will call it when an outage is published with "notify by telephone";
supervisors, admins and the service token may call it now. Each phone on file
for the area's accounts is queued once per outage; the dialler calls them within
calling hours on its lines, and records every result in `calls`.
"""
from __future__ import annotations

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from hotline.api.registry import ApiError, ctx_of, json_response, path_id, route
from hotline.ivr.outbound import jobs
from models import Outage

NOTIFIERS = frozenset({"supervisor", "admin", "service"})


@route("POST", "/api/outages/{id}/notify_calls", "Telephone the residents of an outage's area (each phone once)",
       tag="customers", roles=NOTIFIERS, errors=(401, 403, 404, 409))
async def notify_calls(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    outage_id = path_id(request, "outage")
    if not jobs.dialler_enabled(ctx.config):
        raise ApiError(409, "outbound_disabled", "the outbound dialler is not configured ([outbound])")
    now = ctx.clock()
    try:
        async with ctx.sessions.begin() as session:
            outage = await session.get(Outage, outage_id)
            if outage is None:
                raise ApiError(404, "not_found", "no such outage")
            if outage.ends_at <= now:
                raise ApiError(409, "outage_over", "this outage is over; nobody is called")
            queued = await jobs.queue_outage_notice(session, outage, ctx.config.callback.attempts, now)
    except IntegrityError as exc:  # the same outage queued at the same moment by another request
        raise ApiError(409, "busy", "these calls are being queued by another request; try again") from exc
    return json_response({"outage_id": outage_id, "queued": queued.queued, "already_queued": queued.already,
                          "accounts_without_phone": queued.accounts_without_phone,
                          "calling_hours": ctx.config.outbound.calling_hours})
