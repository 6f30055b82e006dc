"""Canned replies (快捷回复): supervisors write the shared ones, each agent may keep personal ones beside
them, and agents insert them with /shortcut in the reply box. A personal reply is its owner's alone: only
they see, change or remove it. Shortcuts are unique across all replies.

Placeholders in braces are filled by the console from the conversation before the agent sends:
{户号} {姓名} {地址} {电话} {工单号} {坐席}. What is sent is what the agent sees in the box.
"""
from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from hotline.actors import Actor
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
    personal: bool = Field(default=False, description="the author's own; agents' replies are always personal")


def canned_json(c: CannedReply) -> dict[str, Any]:
    return {"id": c.id, "shortcut": c.shortcut, "title": c.title, "text": c.text,
            "updated_at": c.updated_at.isoformat(), "personal": c.owner_id is not None}


@route("GET", "/api/canned_replies", "Canned replies, by shortcut: the shared ones and the caller's own, with "
       "the placeholders the console fills", tag="canned", roles=AGENTS, errors=(401, 403))
async def list_canned(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    async with ctx.readers() as session:
        rows = (await session.execute(select(CannedReply).where(or_(
            CannedReply.owner_id.is_(None), CannedReply.owner_id == actor.id)).order_by(CannedReply.shortcut))
                ).scalars().all()
    return json_response({"items": [canned_json(c) for c in rows], "placeholders": list(PLACEHOLDERS)})


async def _save(request: web.Request, reply_id: int | None) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, CannedBody)
    try:
        async with ctx.sessions.begin() as session:
            if reply_id is None:
                personal = body.personal or actor.role not in MANAGERS
                row = CannedReply(created_by=actor.id, owner_id=actor.id if personal else None)
                session.add(row)
            else:
                row = _writable(await session.get(CannedReply, reply_id), actor)
            row.shortcut, row.title, row.text, row.updated_at = body.shortcut, body.title, body.text, ctx.clock()
            await session.flush()
            publish_on_commit(session, {"type": "canned.changed", "id": row.id})
            data = canned_json(row)
    except IntegrityError:
        raise ApiError(409, "duplicate_shortcut", f"the shortcut /{body.shortcut} is taken") from None
    return json_response(data, status=201 if reply_id is None else 200)


def _writable(row: CannedReply | None, actor: Actor) -> CannedReply:
    """A personal reply is its owner's to change; a shared one the supervisors'. Another's personal reply
    does not exist for the caller (404)."""
    if row is None or (row.owner_id is not None and row.owner_id != actor.id):
        raise ApiError(404, "not_found", "no such canned reply")
    if row.owner_id is None and actor.role not in MANAGERS:
        raise ApiError(403, "forbidden", "shared canned replies are kept by supervisors")
    return row


@route("POST", "/api/canned_replies", "Add a canned reply: shared (supervisors) or personal (any agent)",
       tag="canned", roles=AGENTS,
       body=CannedBody, status=201, errors=(401, 403, 409, 422))
async def create_canned(request: web.Request) -> web.Response:
    return await _save(request, None)


@route("PUT", "/api/canned_replies/{id}", "Change a canned reply: a shared one (supervisors) or one's own",
       tag="canned", roles=AGENTS,
       body=CannedBody, errors=(401, 403, 404, 409, 422))
async def update_canned(request: web.Request) -> web.Response:
    return await _save(request, path_id(request, "canned reply"))


@route("DELETE", "/api/canned_replies/{id}", "Remove a canned reply: a shared one (supervisors) or one's own",
       tag="canned", roles=AGENTS, errors=(401, 403, 404))
async def delete_canned(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    async with ctx.sessions.begin() as session:
        row = _writable(await session.get(CannedReply, path_id(request, "canned reply")), actor)
        await session.delete(row)
        publish_on_commit(session, {"type": "canned.changed", "id": row.id})
    return json_response({"ok": True})
