"""Callback tasks (回访任务): the list agents work from, and the result an agent records after phoning."""
from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from hotline.api.registry import (
    AGENTS,
    ApiError,
    actor_of,
    ctx_of,
    json_response,
    parse_body,
    parse_query,
    path_id,
    route,
)
from hotline.callbacks import tasks as callback_tasks
from models import CallbackTask, Ticket
from models.callback import CALLBACK_STATES


class CallbackQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticket: str | None = Field(default=None, max_length=32, description="a ticket number")
    state: Literal[CALLBACK_STATES] | None = None  # type: ignore[valid-type]
    manual: bool | None = Field(default=None, description="true: the tasks waiting for an agent (回访任务)")
    limit: int = Field(default=100, ge=1, le=500)


class CallbackResult(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reached: bool
    answer: Literal["satisfied", "basically_satisfied", "dissatisfied"] | None = None
    note: str = Field(default="", max_length=2000)


@route("GET", "/api/callbacks", "Callback tasks (回访), oldest due first, filterable by ticket, state and manual",
       tag="callbacks", query=CallbackQuery, roles=AGENTS | {"service"}, errors=(401, 403, 422))
async def list_callbacks(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, CallbackQuery)
    stmt = (select(CallbackTask, Ticket).join(Ticket, Ticket.id == CallbackTask.ticket_id)
            .order_by(CallbackTask.due_at, CallbackTask.id).limit(query.limit))
    if query.ticket:
        stmt = stmt.where(Ticket.number == query.ticket)
    if query.state:
        stmt = stmt.where(CallbackTask.state == query.state)
    if query.manual is not None:
        stmt = stmt.where(CallbackTask.manual == query.manual)
    async with ctx.readers() as session:
        rows = (await session.execute(stmt)).all()
    return json_response({"items": [callback_tasks.task_json(task, ticket) for task, ticket in rows]})


@route("POST", "/api/callbacks/{id}/result", "An agent records a callback made by telephone",
       tag="callbacks", body=CallbackResult, roles=AGENTS, errors=(400, 401, 403, 404, 409, 422))
async def record_result(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, CallbackResult)
    if body.reached and body.answer is None:
        raise ApiError(422, "missing_answer", "a reached resident's answer is needed: satisfied, "
                                              "basically_satisfied or dissatisfied")
    answer = body.answer if body.reached else "unreachable"
    assert answer is not None
    task_id = path_id(request, "callback task")
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        task = await session.get(CallbackTask, task_id)
        if task is None:
            raise ApiError(404, "not_found", "no such callback task")
        callback_tasks.add_attempt(task, "agent", now, answer)
        ticket = await callback_tasks.record_answer(session, ctx.router, task, answer, actor, now, body.note)
        data = callback_tasks.task_json(task, ticket)
    return json_response(data)
