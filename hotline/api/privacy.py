"""Residents' rights and retention, for admins: export a resident's data, erase it, see the purge.

POST /api/residents/export and /api/residents/erase name the resident by exactly one of account,
phone or openid; the identifier travels in the body, never in a URL an access log would keep.
"""
from __future__ import annotations

import asyncio
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, Field, model_validator

from hotline.api.registry import ApiError, actor_of, ctx_of, json_response, parse_body, parse_query, route
from hotline.privacy import export, purge, requests, runs

ADMINS = frozenset({"admin"})
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ResidentBody(BaseModel):
    account: str | None = Field(None, max_length=32, description="户号")
    phone: str | None = Field(None, max_length=32)
    openid: str | None = Field(None, max_length=128, description="WeChat openid")

    @model_validator(mode="after")
    def one_identifier(self) -> ResidentBody:
        given = [k for k in ("account", "phone", "openid") if (getattr(self, k) or "").strip()]
        if len(given) != 1:
            raise ValueError("give exactly one of account, phone, openid")
        return self

    @property
    def subject(self) -> tuple[str, str]:
        for kind in ("account", "phone", "openid"):
            value = getattr(self, kind)
            if value and value.strip():
                return kind, value
        raise AssertionError("validated")


class ExportBody(ResidentBody):
    format: Literal["json", "xlsx"] = "json"


class EraseBody(ResidentBody):
    confirm: bool = Field(False, description="must be true: erasure cannot be undone")


class RunsQuery(BaseModel):
    kind: Literal["purge", "export", "erase"] | None = None
    limit: int = Field(50, ge=1, le=500)


@route("POST", "/api/residents/export", "Everything held about one resident (account, phones, bills, payments, "
       "bindings, tickets, conversations and messages, calls, callbacks), as JSON or an XLSX download; audited",
       tag="privacy", roles=ADMINS, body=ExportBody, errors=(401, 403, 422))
async def export_resident(request: web.Request) -> web.StreamResponse:
    ctx, body = ctx_of(request), await parse_body(request, ExportBody)
    kind, value = body.subject
    result = await requests.export_resident(ctx, kind, value, actor_of(request), "POST /api/residents/export")
    if body.format == "xlsx":
        data = await asyncio.to_thread(export.to_xlsx, result.data)
        return web.Response(body=data, content_type=XLSX, headers={
            "Content-Disposition": f'attachment; filename="resident-export-{result.run_id}.xlsx"',
            "Cache-Control": "no-store"})
    response = json_response(result.data)
    response.headers["Cache-Control"] = "no-store"
    return response


@route("POST", "/api/residents/erase", "Erase one resident's personal data (contact data, what they said, "
       "recordings, bindings, the bot's memory); accounts, bills and tickets' business facts are kept; audited",
       tag="privacy", roles=ADMINS, body=EraseBody, errors=(401, 403, 422))
async def erase_resident(request: web.Request) -> web.Response:
    ctx, body = ctx_of(request), await parse_body(request, EraseBody)
    if not body.confirm:
        raise ApiError(422, "confirm_required", "erasure cannot be undone: send confirm: true")
    kind, value = body.subject
    return json_response(await requests.erase_resident(ctx, kind, value, actor_of(request)))


@route("GET", "/api/privacy/runs", "The latest retention purges, exports and erasures (the audit of each)",
       tag="privacy", roles=ADMINS, query=RunsQuery, errors=(401, 403, 422))
async def list_runs(request: web.Request) -> web.Response:
    query = parse_query(request, RunsQuery)
    return json_response({"runs": await runs.recent(ctx_of(request), query.kind, query.limit)})


@route("POST", "/api/privacy/purge", "Run the retention purge now (dry_run: only count what is due)",
       tag="privacy", roles=ADMINS, body=None, errors=(401, 403))
async def purge_now(request: web.Request) -> web.Response:
    dry_run = request.query.get("dry_run", "").lower() in ("1", "true", "yes")
    actor = actor_of(request)
    report = await purge.run_purge(ctx_of(request), dry_run=dry_run, actor_kind=actor.kind, actor_name=actor.name)
    return json_response(report.as_dict())
