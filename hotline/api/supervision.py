"""Working a shift: agents' presence (在线/忙碌/离开), whispers (notes only staff see), reassigning a
conversation, a supervisor's live overview, and a manual chase (督办) on a ticket.

Conversation changes go through hotline/conversations/service.py, the chase through the ticket
lifecycle; presence is the agent's own state and is kept here.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select

from hotline.api.registry import (
    AGENTS,
    actor_of,
    ctx_of,
    json_response,
    parse_body,
    path_id,
    route,
)
from hotline.api.tickets import full_ticket_json
from hotline.conversations import service
from hotline.events import publish_on_commit
from hotline.tickets import lifecycle
from models import AgentPresence, Conversation, Department, Staff, StaffSession, Ticket
from models.ticket import OPEN_STATUSES

SUPERVISORS = frozenset({"supervisor", "admin"})
PRESENCE_LABELS = {"online": "在线", "busy": "忙碌", "away": "离开"}


class PresenceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["online", "busy", "away"]


class WhisperBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    text: str = Field(min_length=1, max_length=2000)


class ReassignBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    agent: str = Field(min_length=1, max_length=64, description="the username of the agent to serve it")


class ChaseBody(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    note: str = Field(min_length=1, max_length=4000, description="what the chaser expects, told to the people")


@route("GET", "/api/presence", "My presence (在线/忙碌/离开); no choice yet reads as away", tag="supervision",
       roles=AGENTS, errors=(401, 403))
async def my_presence(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    async with ctx.readers() as session:
        row = await session.get(AgentPresence, actor.id)
    status = row.status if row else "away"
    return json_response({"status": status, "label": PRESENCE_LABELS[status]})


@route("PUT", "/api/presence", "Set my presence; 在线 agents are offered waiting conversations at once",
       tag="supervision", roles=AGENTS, body=PresenceBody, errors=(401, 403, 422))
async def set_presence(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, PresenceBody)
    now = ctx.clock()
    assert actor.id is not None
    async with ctx.sessions.begin() as session:
        row = await session.get(AgentPresence, actor.id)
        if row is None:
            row = AgentPresence(staff_id=actor.id, status=body.status, updated_at=now)
            session.add(row)
        else:
            row.status, row.updated_at = body.status, now
        publish_on_commit(session, {"type": "presence.changed", "staff_id": actor.id, "name": actor.name,
                                    "status": body.status})
    if body.status == "online":
        await service.assign_waiting(ctx)
    return json_response({"status": body.status, "label": PRESENCE_LABELS[body.status]})


@route("POST", "/api/conversations/{id}/whisper",
       "A note only staff see (督导提示 / 内部备注); never sent to the resident", tag="supervision",
       roles=AGENTS, body=WhisperBody, status=201, errors=(401, 403, 404, 409, 422))
async def whisper(request: web.Request) -> web.Response:
    body = await parse_body(request, WhisperBody)
    evt = await service.whisper(ctx_of(request), path_id(request, "conversation"), actor_of(request), body.text)
    return json_response({"id": evt.id, "text": evt.data["text"], "by": evt.actor_name, "at": evt.at.isoformat()},
                         status=201)


@route("POST", "/api/conversations/{id}/reassign",
       "Give a conversation to another agent, or take it over yourself (supervisors)", tag="supervision",
       roles=SUPERVISORS, body=ReassignBody, errors=(401, 403, 404, 409, 422))
async def reassign(request: web.Request) -> web.Response:
    body = await parse_body(request, ReassignBody)
    await service.reassign(ctx_of(request), path_id(request, "conversation"), actor_of(request), body.agent)
    return json_response({"ok": True})


@route("POST", "/api/tickets/{number}/chase",
       "督办 by hand: a note to the ticket's assignee and supervisor, in the trail", tag="tickets",
       roles=lifecycle.TRANSITIONS["chase"].roles, body=ChaseBody, errors=(400, 401, 403, 404, 409, 422))
async def chase(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, ChaseBody)
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, request.match_info["number"], actor, for_update=True)
        await lifecycle.transition(session, ctx.router, ticket, "chase", actor, ctx.clock(), note=body.note)
        data = await full_ticket_json(ctx, session, ticket, actor)
    return json_response(data)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


@route("GET", "/api/supervision/overview",
       "Agents signed in with their presence and open conversations, the queue, overdue tickets by department",
       tag="supervision", roles=SUPERVISORS, errors=(401, 403))
async def overview(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    now = ctx.clock()
    async with ctx.readers() as session:
        people = (await session.execute(
            select(Staff, AgentPresence).outerjoin(AgentPresence, AgentPresence.staff_id == Staff.id)
            .where(Staff.active, Staff.role.in_(("agent", "supervisor"))).order_by(Staff.role, Staff.username))).all()
        signed_in = set((await session.execute(select(StaffSession.staff_id).where(
            StaffSession.expires_at > now))).scalars())
        loads = dict((await session.execute(select(Conversation.agent_id, func.count()).where(
            Conversation.status == "agent").group_by(Conversation.agent_id))).all())
        waiting, oldest = (await session.execute(select(func.count(), func.min(Conversation.waiting_since))
                                                 .where(Conversation.status == "waiting"))).one()
        overdue = (await session.execute(
            select(Department.code, Department.name, func.count())
            .join(Ticket, Ticket.department_id == Department.id)
            .where(Ticket.status.in_(OPEN_STATUSES), Ticket.resolution_due_at < now)
            .group_by(Department.code, Department.name).order_by(func.count().desc()))).all()
    agents: list[dict[str, Any]] = [
        {"username": s.username, "display_name": s.display_name, "role": s.role,
         "presence": p.status if p else "away", "presence_since": _iso(p.updated_at) if p else None,
         "signed_in": s.id in signed_in, "open_conversations": loads.get(s.id, 0)} for s, p in people]
    return json_response({
        "agents": agents,
        "queue": {"waiting": waiting, "oldest_waiting_since": _iso(oldest)},
        "overdue_by_department": [{"department": code, "department_name": name, "overdue": n}
                                  for code, name, n in overdue],
        "at": now.isoformat(),
    })
