"""Canned replies (快捷回复): supervisors write them, agents insert them with /shortcut in the reply box.

Placeholders in braces are filled by the console from the conversation before the agent sends:
{户号} {姓名} {地址} {电话} {工单号} {坐席}. What is sent is what the agent sees in the box.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hotline.api.registry import AGENTS, ApiError, actor_of, ctx_of, json_response, parse_body, path_id, route
from hotline.events import publish_on_commit
from models import CannedReply

MANAGERS = frozenset({"supervisor", "admin"})
PLACEHOLDERS = ("户号", "姓名", "地址", "电话", "工单号", "坐席")


class CannedBody(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    shortcut: str = Field(min_length=1, max_length=32, pattern=r"^[^\s/]+$", description="typed after /")
    title: str = Field(min_length=1, max_length=100)
    text: str = Field(min_length=1, max_length=2000)


def canned_json(c: CannedReply) -> dict[str, Any]:
    return {"id": c.id, "shortcut": c.shortcut, "title": c.title, "text": c.text,
            "updated_at": c.updated_at.isoformat()}


@route("GET", "/api/canned_replies", "Canned replies, by shortcut, with the placeholders the console fills",
       tag="canned", roles=AGENTS, errors=(401, 403))
async def list_canned(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    async with ctx.readers() as session:
        rows = (await session.execute(select(CannedReply).order_by(CannedReply.shortcut))).scalars().all()
    return json_response({"items": [canned_json(c) for c in rows], "placeholders": list(PLACEHOLDERS)})


async def _save(request: web.Request, reply_id: int | None) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, CannedBody)
    try:
        async with ctx.sessions.begin() as session:
            if reply_id is None:
                row = CannedReply(created_by=actor.id)
                session.add(row)
            else:
                found = await session.get(CannedReply, reply_id)
                if found is None:
                    raise ApiError(404, "not_found", "no such canned reply")
                row = found
            row.shortcut, row.title, row.text, row.updated_at = body.shortcut, body.title, body.text, ctx.clock()
            await session.flush()
            publish_on_commit(session, {"type": "canned.changed", "id": row.id})
            data = canned_json(row)
    except IntegrityError:
        raise ApiError(409, "duplicate_shortcut", f"the shortcut /{body.shortcut} is taken") from None
    return json_response(data, status=201 if reply_id is None else 200)


@route("POST", "/api/canned_replies", "Add a canned reply (supervisors)", tag="canned", roles=MANAGERS,
       body=CannedBody, status=201, errors=(401, 403, 409, 422))
async def create_canned(request: web.Request) -> web.Response:
    return await _save(request, None)


@route("PUT", "/api/canned_replies/{id}", "Change a canned reply (supervisors)", tag="canned", roles=MANAGERS,
       body=CannedBody, errors=(401, 403, 404, 409, 422))
async def update_canned(request: web.Request) -> web.Response:
    return await _save(request, path_id(request, "canned reply"))


@route("DELETE", "/api/canned_replies/{id}", "Remove a canned reply (supervisors)", tag="canned", roles=MANAGERS,
       errors=(401, 403, 404))
async def delete_canned(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    async with ctx.sessions.begin() as session:
        row = await session.get(CannedReply, path_id(request, "canned reply"))
        if row is None:
            raise ApiError(404, "not_found", "no such canned reply")
        await session.delete(row)
        publish_on_commit(session, {"type": "canned.changed", "id": row.id})
    return json_response({"ok": True})
