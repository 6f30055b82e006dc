"""Outages published by dispatchers, incidents confirmed or dismissed by supervisors, public-opinion
alerts, and WeChat residents binding their account (for the bot, with the service token)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import Actor
from hotline.api.registry import (
    ALL_STAFF,
    LOCAL_TIME,
    STAFF_AND_SERVICE,
    ApiError,
    actor_of,
    ctx_of,
    json_response,
    parse_body,
    parse_query,
    path_id,
    route,
    utility_time,
)
from hotline.context import AppContext
from hotline.incidents import bindings, doors, notices
from models import Conversation, Customer, Department, Incident, IncidentEvent, OpinionAlert, Outage, Ticket

SUPERVISORS = frozenset({"supervisor", "admin"})


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class OutageIn(_Body):
    areas: list[str] = Field(min_length=1, max_length=20)
    title: str = Field(min_length=1, max_length=200)
    detail: str = Field(default="", max_length=2000)
    planned: bool = True
    starts_at: dt.datetime = Field(description=LOCAL_TIME)
    ends_at: dt.datetime = Field(description=LOCAL_TIME)


class OutageChange(_Body):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    detail: str | None = Field(default=None, max_length=2000)
    ends_at: dt.datetime | None = Field(default=None, description=LOCAL_TIME)
    areas: list[str] | None = Field(default=None, min_length=1, max_length=20)


class Note(_Body):
    note: str = Field(default="", max_length=2000)


class Confirm(_Body):
    expected_restore_at: dt.datetime = Field(description=LOCAL_TIME)
    text: str = Field(min_length=1, max_length=2000, description="what residents are told: cause and work")


class End(_Body):
    resolution: str = Field(min_length=1, max_length=2000)


class IncidentQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["suspected", "active", "dismissed", "ended"] | None = None
    limit: int = Field(default=50, ge=1, le=200)


class AlertQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    open: bool = True
    limit: int = Field(default=50, ge=1, le=200)


class Resident(BaseModel):
    """A WeChat user, by openid or by their WeChat conversation (what the bot knows)."""
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    openid: str | None = Field(default=None, min_length=1, max_length=128)
    conversation_id: int | None = Field(default=None, ge=1)


class BindIn(Resident):
    account_number: str = Field(min_length=1, max_length=32)
    proof: str = Field(min_length=1, max_length=50, description="last four digits of the phone on file, or the "
                                                                   "account holder's name")


class OpenidQuery(Resident):
    pass


class LocateQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str | None = Field(default=None, max_length=32, description="a 户号: its area comes first")
    address: str = Field(default="", max_length=500)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


async def _dispatcher(ctx: AppContext, actor: Actor) -> None:
    """Supervisors, admins, agents, and department staff of the dispatching departments."""
    if actor.kind == "service" or actor.role in ("supervisor", "admin", "agent"):
        return
    async with ctx.readers() as session:
        code = (await session.execute(select(Department.code).where(
            Department.id == actor.department_id))).scalar_one_or_none()
    if code not in ctx.incident_rules.spec.dispatch_departments:
        raise ApiError(403, "forbidden", "only dispatchers publish, change and end outages")


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def zone_json(ctx: AppContext) -> dict[str, str]:
    """The zone the console's time boxes are in, so the form can say it beside them."""
    zone = ctx.router.calendar.timezone
    offset = ctx.clock().astimezone(zone).strftime("%z")
    return {"timezone": str(zone), "utc_offset": f"{offset[:3]}:{offset[3:]}"}


async def outage_json(session: Any, outage: Outage) -> dict[str, Any]:
    return {"id": outage.id, "areas": await doors.outage_areas(session, outage), "title": outage.title,
            "detail": outage.detail, "planned": outage.planned, "starts_at": _iso(outage.starts_at),
            "ends_at": _iso(outage.ends_at), "ended_at": _iso(outage.ended_at),
            "published_by": outage.published_by}


# --- outages ----------------------------------------------------------------------------------------

@route("GET", "/api/areas", "The areas outages and incidents are about, and the time zone outage times are read in",
       tag="incidents", roles=STAFF_AND_SERVICE)
async def areas(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return json_response({"items": await notices.areas_known(ctx), **zone_json(ctx)})


@route("GET", "/api/areas/locate", "The area of an account (its supply area), else of an address (its street "
       "words) or of a location (inside an area's outline), as incidents place reports", tag="incidents",
       query=LocateQuery, roles=STAFF_AND_SERVICE, errors=(401, 403, 422))
async def locate(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, LocateQuery)
    area = None
    if query.account:  # only the area is answered: no name, address or anything else of the account
        async with ctx.readers() as session:
            area = (await session.execute(select(Customer.area).where(
                Customer.account_number == query.account))).scalar_one_or_none()
    return json_response({"area": area or ctx.incident_rules.locate(query.address, query.latitude, query.longitude)})


@route("POST", "/api/outages", "Publish an outage (停水通知); bound residents in its areas are told",
       tag="incidents", body=OutageIn, roles=ALL_STAFF | {"service"}, status=201, errors=(400, 401, 403, 422))
async def publish(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    await _dispatcher(ctx, actor)
    body = await parse_body(request, OutageIn)
    async with ctx.sessions.begin() as session:
        outage = await doors.publish_outage(session, areas=body.areas, title=body.title, detail=body.detail,
                                            planned=body.planned, starts_at=utility_time(ctx, body.starts_at),
                                            ends_at=utility_time(ctx, body.ends_at), actor=actor, now=ctx.clock())
        data = await outage_json(session, outage)
    data["residents_told"] = await notices.tell_area(ctx, data["id"], "publish")
    return json_response(data, status=201)


@route("PATCH", "/api/outages/{id}", "Edit or extend (延长) an outage; an extension is announced",
       tag="incidents", body=OutageChange, roles=ALL_STAFF | {"service"}, errors=(400, 401, 403, 404, 409, 422))
async def change_outage(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    await _dispatcher(ctx, actor)
    body = await parse_body(request, OutageChange)
    async with ctx.sessions.begin() as session:
        outage = await session.get(Outage, path_id(request, "outage"))
        if outage is None:
            raise ApiError(404, "not_found", "no such outage")
        action = await doors.update_outage(session, outage, actor=actor, now=ctx.clock(), title=body.title,
                                           detail=body.detail, areas=body.areas,
                                           ends_at=utility_time(ctx, body.ends_at) if body.ends_at else None)
        data = await outage_json(session, outage)
    data["residents_told"] = await notices.tell_area(ctx, data["id"], action)
    return json_response(data)


@route("POST", "/api/outages/{id}/end", "End an outage (供水恢复), early or on time; announced",
       tag="incidents", body=Note, roles=ALL_STAFF | {"service"}, errors=(400, 401, 403, 404, 409))
async def end_outage(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    await _dispatcher(ctx, actor)
    body = await parse_body(request, Note)
    async with ctx.sessions.begin() as session:
        outage = await session.get(Outage, path_id(request, "outage"))
        if outage is None:
            raise ApiError(404, "not_found", "no such outage")
        await doors.end_outage(session, outage, actor, ctx.clock(), body.note)
        data = await outage_json(session, outage)
    data["residents_told"] = await notices.tell_area(ctx, data["id"], "end")
    return json_response(data)


# --- incidents ----------------------------------------------------------------------------------------

async def incident_json(session: Any, incident: Incident) -> dict[str, Any]:
    reports = await doors.reports_of(session, incident.id)
    return {"id": incident.id, "status": incident.status, "areas": [incident.area], "area": incident.area,
            "kind": incident.kind, "business_type": incident.business_type, "title": incident.title,
            "text": incident.text, "reports": [t.number for t in reports],
            "report_details": [{"ticket": t.number, "channel": t.channel, "status": t.status,
                                "created_at": _iso(t.created_at), "address": t.address} for t in reports],
            "expected_restore_at": _iso(incident.expected_restore_at), "outage_id": incident.outage_id,
            "detected_at": _iso(incident.detected_at), "decided_by": incident.decided_by,
            "ended_at": _iso(incident.ended_at), "resolution": incident.resolution}


@route("GET", "/api/incidents", "Incidents, newest first, by status", tag="incidents", query=IncidentQuery,
       roles=STAFF_AND_SERVICE, errors=(401, 422))
async def list_incidents(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, IncidentQuery)
    stmt = select(Incident).order_by(Incident.id.desc()).limit(query.limit)
    if query.status:
        stmt = stmt.where(Incident.status == query.status)
    async with ctx.readers() as session:
        found = list((await session.execute(stmt)).scalars())
        return json_response({"items": [await incident_json(session, i) for i in found]})


async def _incident(session: Any, request: web.Request) -> Incident:
    incident = await session.get(Incident, path_id(request, "incident"))
    if incident is None:
        raise ApiError(404, "not_found", "no such incident")
    return incident


@route("POST", "/api/incidents/{id}/confirm", "Confirm a suspected incident: an unplanned outage, reporters told",
       tag="incidents", body=Confirm, roles=SUPERVISORS | {"service"}, errors=(400, 401, 403, 404, 409, 422))
async def confirm(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, Confirm)
    async with ctx.sessions.begin() as session:
        incident = await _incident(session, request)
        outage = await doors.confirm(session, incident, expected_restore_at=utility_time(ctx, body.expected_restore_at),
                                     text=body.text, actor=actor, now=ctx.clock())
        outage_id = outage.id
        data = await incident_json(session, incident)
    data["residents_told"] = await notices.tell_reporters(ctx, data["id"])
    data["bound_residents_told"] = await notices.tell_area(ctx, outage_id, "publish")
    return json_response(data)


@route("POST", "/api/incidents/{id}/dismiss", "Dismiss a suspected incident: its reports go on separately",
       tag="incidents", body=Note, roles=SUPERVISORS | {"service"}, errors=(400, 401, 403, 404, 409))
async def dismiss(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, Note)
    async with ctx.sessions.begin() as session:
        incident = await _incident(session, request)
        await doors.dismiss(session, ctx.router, incident, actor, ctx.clock(), body.note)
        return json_response(await incident_json(session, incident))


@route("POST", "/api/incidents/{id}/end", "Restored: every linked report resolved, residents told, callbacks "
       "scheduled, the outage ended", tag="incidents", body=End, roles=SUPERVISORS | {"service"},
       errors=(400, 401, 403, 404, 409, 422))
async def end_incident(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, End)
    async with ctx.sessions.begin() as session:
        incident = await _incident(session, request)
        resolved = await doors.end(session, ctx.router, incident, body.resolution, actor, ctx.clock())
        outage_id = incident.outage_id
        data = await incident_json(session, incident)
        data["resolved"] = [t.number for t in resolved]
    if outage_id is not None:
        data["bound_residents_told"] = await notices.tell_area(ctx, outage_id, "end")
    return json_response(data)


# --- public-opinion alerts ------------------------------------------------------------------------

@route("GET", "/api/alerts", "Public-opinion alerts (舆情预警), open ones by default", tag="incidents",
       query=AlertQuery, roles=SUPERVISORS | {"agent", "service"}, errors=(401, 403, 422))
async def list_alerts(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, AlertQuery)
    stmt = select(OpinionAlert, Ticket.number).outerjoin(Ticket, Ticket.id == OpinionAlert.ticket_id) \
        .order_by(OpinionAlert.id.desc()).limit(query.limit)
    if query.open:
        stmt = stmt.where(OpinionAlert.acknowledged_at.is_(None))
    async with ctx.readers() as session:
        rows = (await session.execute(stmt)).all()
    return json_response({"items": [{
        "id": a.id, "words": a.words, "excerpt": a.excerpt, "conversation_id": a.conversation_id,
        "ticket": number, "created_at": _iso(a.created_at), "acknowledged_at": _iso(a.acknowledged_at),
        "acknowledged_by": a.acknowledged_by} for a, number in rows]})


@route("POST", "/api/alerts/{id}/acknowledge", "A supervisor acknowledges an alert (audited)", tag="incidents",
       body=Note, roles=SUPERVISORS, errors=(400, 401, 403, 404, 409))
async def acknowledge(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, Note)
    async with ctx.sessions.begin() as session:
        alert = await session.get(OpinionAlert, path_id(request, "alert"))
        if alert is None:
            raise ApiError(404, "not_found", "no such alert")
        await doors.acknowledge(session, alert, actor, ctx.clock(), body.note)
    return json_response({"id": alert.id, "acknowledged_by": actor.name})


@route("GET", "/api/events/{subject}/{id}", "The audit trail of an outage, incident or alert", tag="incidents",
       roles=ALL_STAFF | {"service"}, errors=(401, 404))
async def trail(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    subject = request.match_info["subject"]
    if subject not in ("outage", "incident", "alert"):
        raise ApiError(404, "not_found", "no such subject")
    async with ctx.readers() as session:
        rows = (await session.execute(select(IncidentEvent).where(
            IncidentEvent.subject == subject, IncidentEvent.subject_id == path_id(request, subject))
            .order_by(IncidentEvent.id))).scalars().all()
    return json_response({"items": [{"action": e.action, "at": _iso(e.at), "data": e.data,
                                     "actor": {"kind": e.actor_kind, "name": e.actor_name}} for e in rows]})


# --- binding a WeChat user to an account (绑定户号) -----------------------------------------------

@route("POST", "/api/bindings", "Bind a WeChat user to an account, proven by the phone's last four digits or the "
       "holder's name; at most 5 tries an hour", tag="incidents", body=BindIn, roles=frozenset({"service"}),
       errors=(400, 401, 403, 404, 422, 429))
async def bind(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await parse_body(request, BindIn)
    async with ctx.sessions.begin() as session:
        openid = await _openid(session, body)
        customer = await bindings.bind(session, openid, body.account_number, body.proof, ctx.clock(),
                                       ctx.config.privacy)
    if customer is None:
        raise ApiError(422, "not_proven", "户号或验证信息不正确")
    return json_response({"openid": openid, "account_number": customer.account_number,
                          "name": bindings.masked(customer.name), "area": customer.area})


async def _openid(session: AsyncSession, who: Resident) -> str:
    if who.openid:
        return who.openid
    if who.conversation_id is None:
        raise ApiError(422, "missing_resident", "give openid or conversation_id")
    conv = await session.get(Conversation, who.conversation_id)
    if conv is None:
        raise ApiError(404, "not_found", "no such conversation")
    if conv.channel != "wechat":
        raise ApiError(422, "not_wechat", "只有微信公众号用户可以绑定户号")
    return conv.external_user


@route("GET", "/api/bindings", "The accounts a WeChat user has bound", tag="incidents", query=OpenidQuery,
       roles=frozenset({"service", "agent", "supervisor", "admin"}), errors=(401, 403, 404, 422))
async def bound(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, OpenidQuery)
    async with ctx.readers() as session:
        found = await bindings.accounts_of(session, await _openid(session, query))
    return json_response({"items": [{"account_number": c.account_number, "name": bindings.masked(c.name),
                                     "area": c.area} for c in found]})


@route("POST", "/api/bindings/unbind", "Unbind a WeChat user from all accounts", tag="incidents", body=OpenidQuery,
       roles=frozenset({"service"}), errors=(400, 401, 403, 404, 422))
async def unbind(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await parse_body(request, OpenidQuery)
    async with ctx.sessions.begin() as session:
        count = await bindings.unbind(session, await _openid(session, body), ctx.clock())
    return json_response({"unbound": count})
