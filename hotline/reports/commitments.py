"""GET /commitments (服务承诺): what the utility promises next to what it achieved, for the public.

The promises are configuration: the time limits of config/routing.yml per business type (the
very ones tickets are routed with) and config/commitments.yml for the rest. The achievements
are the reports' own figures for the last 30 days and this month. The page is rebuilt at most
once a minute, in the background, and served as prepared bytes from memory; it holds only
aggregates (no name, phone, address or account), needs no sign-in and runs no script.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import html
import logging
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import and_, func, select

from hotline.context import AppContext
from hotline.reports.queries import ReportQuery, Reports
from hotline.reports.sql import percentiles, rate
from models import Ticket

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
REFRESH_SECONDS = 60.0
ON_SITE_TYPES = ("burst_main", "no_water")  # 爆管、停水: where the time to arrive matters most
HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
                                "form-action 'none'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
    "Cache-Control": "public, max-age=60",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Standard(_Strict):
    name: str
    standard: str


class Standards(_Strict):
    basis: str
    items: list[Standard]


class Hall(_Strict):
    name: str
    address: str = ""  # not set: the page shows none rather than a placeholder
    hours: list[str]


class Price(_Strict):
    name: str
    price: str


class Tariff(_Strict):
    basis: str
    unit: str
    items: list[Price]
    note: str = ""


class CommitmentsFile(_Strict):
    title: str
    intro: str
    hotline: str
    water_quality: Standards
    pressure: Standards
    service_hall: Hall
    tariff: Tariff


class CommitmentsError(ValueError):
    pass


def load_commitments(path: Path) -> CommitmentsFile:
    try:
        return CommitmentsFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError) as exc:
        raise CommitmentsError(f"{path}: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise CommitmentsError(f"{path}: {problems}") from exc


async def achieved(ctx: AppContext, first: dt.date, last: dt.date) -> dict[str, Any]:
    """The period's figures, from the same queries as the reports."""
    async with ctx.readers() as session:
        reports = Reports(session, ctx.router, ReportQuery(first=first, last=last, now=ctx.clock()))
        timeliness = await reports.timeliness()
        rows = next(s.rows for s in timeliness.sections if s.id == "by_business_type")
        t = Ticket
        answer = reports.callback_answer()
        surveyed, satisfied, answered = (await session.execute(select(
            reports.count_if(reports.surveyed()),
            reports.count_if(answer.in_(("satisfied", "basically_satisfied"))),
            reports.count_if(answer.in_(("satisfied", "basically_satisfied", "dissatisfied", "unclear"))))
            .where(*reports.ticket_where()))).one()
        arrived = getattr(Ticket, "arrived_at", None)
        end = arrived if arrived is not None else t.responded_at
        on_site = {k: p50 for k, _n, p50, _p90 in (await session.execute(percentiles(
            t.business_type, reports.d.seconds(t.created_at, end),
            [*reports.ticket_where(), and_(t.business_type.in_(ON_SITE_TYPES))]))).all()}
        total = (await session.execute(select(func.count()).where(*reports.ticket_where()))).scalar_one()
    return {"types": {r["code"]: r for r in rows}, "tickets": int(total),
            "on_time_response_rate": timeliness.figures.get("on_time_response_rate"),
            "on_time_resolution_rate": timeliness.figures.get("on_time_resolution_rate"),
            "callbacks": int(surveyed or 0), "satisfaction_rate": rate(int(satisfied or 0), int(answered or 0)),
            "on_site_minutes": {k: None if v is None else round(float(v) / 60) for k, v in on_site.items()},
            "on_site_is_arrival": arrived is not None}


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def render(spec: CommitmentsFile, ctx: AppContext, periods: list[tuple[str, dict[str, Any]]],
           built: dt.datetime) -> bytes:
    """The whole page as bytes; every configured or computed value is escaped."""
    router = ctx.router
    out: list[str] = [
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{_e(spec.title)}</title><link rel=\"icon\" href=\"data:,\">",
        "<link rel=\"stylesheet\" href=\"/commitments/static/commitments.css\"></head><body><main>",
        f"<h1>{_e(spec.title)}</h1><p class=\"intro\">{_e(spec.intro)}</p>",
        f"<p class=\"hotline\">服务热线 <strong>{_e(spec.hotline)}</strong></p>",
        "<section><h2>总体完成情况</h2><table class=\"summary\"><thead><tr><th>指标</th>",
    ]
    out += [f"<th>{_e(label)}</th>" for label, _ in periods]
    out.append("</tr></thead><tbody>")
    for key, label, fmt in (("tickets", "受理工单", str), ("on_time_response_rate", "按时响应率", _pct),
                            ("on_time_resolution_rate", "按时办结率", _pct), ("callbacks", "回访次数", str),
                            ("satisfaction_rate", "满意率（满意与基本满意）", _pct)):
        out.append(f"<tr><th>{_e(label)}</th>" + "".join(f"<td>{_e(fmt(p[key]))}</td>" for _, p in periods) + "</tr>")
    arrival = periods[0][1]["on_site_is_arrival"] if periods else False
    for code in ON_SITE_TYPES:
        bt = router.spec.business_types.get(code)
        if bt is None:
            continue
        what = "到场用时中位数" if arrival else "响应用时中位数"
        minutes = [p["on_site_minutes"].get(code) for _, p in periods]
        cells = "".join(f"<td>{_e('—' if m is None else f'{m} 分钟')}</td>" for m in minutes)
        out.append(f"<tr><th>{_e(bt.name)}{what}</th>{cells}</tr>")
    out.append("</tbody></table>")
    if not arrival:
        out.append("<p class=\"note\">到场时间尚未单独记录，暂以受理到响应的用时计。</p>")
    out.append("</section><section><h2>办理时限承诺与兑现</h2>")
    for cat_code, cat in router.spec.categories.items():
        types = [(c, bt) for c, bt in router.spec.business_types.items() if bt.category == cat_code]
        out.append(f"<h3>{_e(cat.name)}</h3><table class=\"limits\"><thead><tr><th>业务</th><th>承诺时限</th>")
        out += [f"<th>{_e(label)}<br>按时办结</th>" for label, _ in periods]
        out.append("</tr></thead><tbody>")
        for code, bt in types:
            limits = bt.limits.get(bt.priority) or bt.limits["normal"]
            promise = f"{limits.response.describe()}内响应，{limits.resolution.describe()}内办结"
            cells = "".join(f"<td>{_e(_pct((p['types'].get(code) or {}).get('on_time_resolution_rate')))}</td>"
                            for _, p in periods)
            out.append(f"<tr><th>{_e(bt.name)}</th><td>{_e(promise)}</td>{cells}</tr>")
        out.append("</tbody></table>")
    out.append("<p class=\"note\">工作日按国家法定节假日安排计算；按时办结率只计已到时限或已办结的工单。</p></section>")
    for block, heading in ((spec.water_quality, "水质标准"), (spec.pressure, "供水压力与停水")):
        out.append(f"<section><h2>{heading}</h2><table class=\"standards\"><tbody>")
        out += [f"<tr><th>{_e(i.name)}</th><td>{_e(i.standard)}</td></tr>" for i in block.items]
        out.append(f"</tbody></table><p class=\"basis\">依据：{_e(block.basis)}</p></section>")
    hall = spec.service_hall
    address = f"<p>{_e(hall.address)}</p>" if hall.address.strip() else ""
    out.append(f"<section><h2>{_e(hall.name)}</h2>{address}<ul>")
    out += [f"<li>{_e(h)}</li>" for h in hall.hours]
    tariff = spec.tariff
    out.append(f"</ul></section><section><h2>收费标准</h2><table class=\"tariff\"><thead><tr><th>类别</th>"
               f"<th>单价（{_e(tariff.unit)}）</th></tr></thead><tbody>")
    out += [f"<tr><th>{_e(i.name)}</th><td>{_e(i.price)}</td></tr>" for i in tariff.items]
    out.append(f"</tbody></table><p class=\"basis\">依据：{_e(tariff.basis)}</p>")
    if tariff.note:
        out.append(f"<p class=\"note\">{_e(tariff.note)}</p>")
    local = built.astimezone(router.calendar.timezone)
    out.append(f"</section><footer>数据更新于 {local:%Y-%m-%d %H:%M}（每分钟更新）</footer></main></body></html>")
    return "".join(out).encode("utf-8")


class CommitmentsPage:
    """The prepared page; rebuilt in the background when older than a minute (one rebuild at a time)."""

    def __init__(self, ctx: AppContext, spec: CommitmentsFile) -> None:
        self.ctx, self.spec = ctx, spec
        self.page: bytes | None = None
        self.built = 0.0
        self._task: asyncio.Task[None] | None = None

    async def build(self) -> None:
        ctx = self.ctx
        today = ctx.today()
        periods = [("近30天", await achieved(ctx, today - dt.timedelta(days=29), today)),
                   ("本月", await achieved(ctx, today.replace(day=1), today))]
        self.page = render(self.spec, ctx, periods, ctx.clock())
        self.built = time.monotonic()

    async def _rebuild(self) -> None:
        try:
            await self.build()
        except Exception:  # the previous page stays up
            log.exception("service-commitment page not rebuilt")

    async def get(self) -> bytes:
        if self.page is None:
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._rebuild())
            await asyncio.shield(self._task)
            if self.page is None:
                raise web.HTTPServiceUnavailable(text="稍后再试")
        elif time.monotonic() - self.built > REFRESH_SECONDS and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._rebuild())
        return self.page


PAGE = web.AppKey("commitments", CommitmentsPage)


async def commitments_view(request: web.Request) -> web.Response:
    body = await request.app[PAGE].get()
    return web.Response(body=body, headers={**HEADERS, "Content-Type": "text/html; charset=utf-8"})


async def _css(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "commitments.css", headers={**HEADERS, "Content-Type": "text/css"})


def setup(app: web.Application, ctx: AppContext) -> None:
    spec = load_commitments(ctx.config.path("config/commitments.yml"))
    app[PAGE] = CommitmentsPage(ctx, spec)
    app.router.add_get("/commitments", commitments_view)
    app.router.add_get("/commitments/static/commitments.css", _css)
