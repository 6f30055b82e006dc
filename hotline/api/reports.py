"""GET /api/reports/{name}: the reports (报表) as JSON, CSV or XLSX.

Supervisors, admins and the service token see everything; department staff only their own
department (the filter is forced here, whatever the query says) and no per-agent or channel
figures; agents are refused.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from hotline.api.registry import ApiError, ChannelName, actor_of, ctx_of, json_response, parse_query, route
from hotline.reports import export
from hotline.reports.queries import REPORTS, ReportQuery, run_report
from models import Department

REPORT_ROLES = frozenset({"supervisor", "department", "admin", "service"})
MAX_DAYS = 366 * 2
FORMATS = {"csv": "text/csv; charset=utf-8",
           "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


class ReportParams(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: dt.date | None = Field(default=None, alias="from", description="first day (Beijing time); default: "
                                                                            "the first of this month")
    to: dt.date | None = Field(default=None, description="last day, inclusive; default: today")
    department: str | None = Field(default=None, max_length=64)
    category: Literal["repair", "complaint", "inquiry", "billing"] | None = None
    business_type: str | None = Field(default=None, max_length=40)
    channel: ChannelName | None = None
    format: Literal["json", "csv", "xlsx"] = "json"

    @model_validator(mode="after")
    def _order(self) -> ReportParams:
        if self.from_ and self.to and self.to < self.from_:
            raise ValueError("'to' is before 'from'")
        return self


@route("GET", "/api/reports/{name}", "A report (workload, timeliness, quality, people, channels) over a range of "
       "days, as JSON or as a CSV/XLSX download (format=csv|xlsx)", tag="reports", query=ReportParams,
       roles=REPORT_ROLES, errors=(401, 403, 404, 422))
async def report_view(request: web.Request) -> web.StreamResponse:
    ctx, actor = ctx_of(request), actor_of(request)
    name = request.match_info["name"]
    if name not in REPORTS:
        raise ApiError(404, "not_found", f"no report {name!r}; expected one of {', '.join(REPORTS)}")
    params = parse_query(request, ReportParams)
    now = ctx.clock()
    today = ctx.router.calendar.local_date(now)
    first, last = params.from_ or today.replace(day=1), params.to or today
    if last < first:
        raise ApiError(422, "invalid_query", "'to' is before 'from'")
    if (last - first).days >= MAX_DAYS:
        raise ApiError(422, "invalid_query", f"at most {MAX_DAYS} days at once")
    if params.business_type and params.business_type not in ctx.router.spec.business_types:
        raise ApiError(422, "invalid_query", f"unknown business_type {params.business_type!r}")
    own_only = actor.is_staff and actor.role == "department"
    if own_only and name == "channels":
        raise ApiError(403, "forbidden", "the channel report is not kept per department")
    query = ReportQuery(first=first, last=last, now=now, category=params.category,
                        business_type=params.business_type, channel=params.channel, own_department_only=own_only)
    async with ctx.readers() as session:
        depts = {code: i for code, i in (await session.execute(select(Department.code, Department.id))).all()}
        if own_only:
            if actor.department_id is None:
                raise ApiError(403, "forbidden", "no department")
            if params.department and depts.get(params.department) != actor.department_id:
                raise ApiError(403, "forbidden", "department staff see their own department only")
            query.department_id = actor.department_id
            query.department = next((c for c, i in depts.items() if i == actor.department_id), None)
        elif params.department:
            if params.department not in depts:
                raise ApiError(422, "unknown_department", f"unknown department {params.department!r}")
            query.department, query.department_id = params.department, depts[params.department]
        report = await run_report(session, ctx.router, name, query)
    if params.format == "json":
        return json_response(report.as_json())
    filename = f"report-{name}-{first.isoformat()}-{last.isoformat()}.{params.format}"
    body = export.to_csv(report) if params.format == "csv" else await asyncio.to_thread(export.to_xlsx, report)
    return web.Response(body=body, headers={"Content-Type": FORMATS[params.format],
                                            "Content-Disposition": f'attachment; filename="{filename}"'})
