"""The five reports (报表): every figure is an aggregate computed by SQL over the live store.

Nothing is copied into a reporting table, so a figure cannot drift from the tickets,
conversations and calls it counts. Queries group once per dimension set and the few
roll-ups (a total over the rows SQL grouped) are summed here. Tickets are taken by their
creation time in local (Beijing) time, from the first day's midnight to the midnight after
the last day; on-time means "by the due time stored on the ticket", which the router computed
from config/routing.yml and the working-day calendar, so working days and holidays count
exactly as they did for the resident.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, and_, case, cast, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from hotline.channels import registry as channels
from hotline.reports.sql import Dialect, percentiles, rate
from hotline.tickets.routing import Router
from models import (
    Call,
    Conversation,
    ConversationEvent,
    Customer,
    Department,
    Incident,
    IncidentReport,
    Message,
    OpinionAlert,
    Staff,
    Ticket,
    TicketEvent,
)
from models.ticket import OPEN_STATUSES

REPORTS = ("workload", "timeliness", "quality", "people", "channels")
WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")
ANSWER_LABELS = {"satisfied": "满意", "basically_satisfied": "基本满意", "dissatisfied": "不满意",
                 "unclear": "说不清", "unreachable": "未联系上"}
HANDOFF_LABELS = {"requested": "居民要求人工", "fallback": "机器人未能理解", "angry": "居民情绪激动",
                  "api_unavailable": "业务系统不可用", "bot_unavailable": "智能客服不可用"}
OUTCOME_LABELS = {"self_served": "自助服务", "ticket": "已建工单", "transferred": "转人工", "voicemail": "语音留言",
                  "abandoned": "中途挂机", "failed": "失败", None: "进行中"}
# How the bot says it did not understand (bot/domain.yml utter_default, and the fallback hand-off in
# bot/actions/actions.py): the resident message just before such a reply is one the bot did not understand.
FALLBACK_PREFIXES = ("抱歉，我没有理解", "抱歉，我还是没能理解")
# Audit actions of department work that other parts of the service record (zero until they exist).
RETURN_ACTIONS = ("return",)
EXTENSION_ACTIONS = ("request_extension",)  # extensions asked for (approve_extension: granted)
RESOLVED_STATUSES = ("resolved", "callback", "closed")
# How a conversation comes to an agent: taken over, given by the presence-based assignment, or reassigned.
RECEIVE_ACTIONS = ("take_over", "assign", "reassign")


class ReportError(ValueError):
    pass


@dataclass
class ReportQuery:
    """What was asked: an inclusive range of local days and optional filters (already checked)."""

    first: dt.date
    last: dt.date
    now: dt.datetime
    department: str | None = None
    department_id: int | None = None
    category: str | None = None
    business_type: str | None = None
    channel: str | None = None
    own_department_only: bool = False  # department staff: no per-agent or channel figures

    def bounds(self, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
        start = dt.datetime.combine(self.first, dt.time(), tzinfo=tz).astimezone(dt.UTC)
        end = dt.datetime.combine(self.last + dt.timedelta(days=1), dt.time(), tzinfo=tz).astimezone(dt.UTC)
        return start, end

    @property
    def ticket_filtered(self) -> bool:
        return any((self.department_id, self.category, self.business_type))


@dataclass
class Section:
    """One figure: a table, and how the console draws it (`chart`: type and which columns)."""

    id: str
    title: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    chart: dict[str, Any] | None = None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "columns": [{"key": k, "label": v} for k, v in self.columns],
                "rows": self.rows, "chart": self.chart, "note": self.note}


@dataclass
class Report:
    name: str
    title: str
    query: ReportQuery
    figures: dict[str, Any] = field(default_factory=dict)
    figure_labels: dict[str, str] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def figure(self, key: str, label: str, value: Any) -> None:
        self.figures[key] = value
        self.figure_labels[key] = label

    def summary_section(self) -> Section:
        return Section("summary", "主要指标", [("label", "指标"), ("value", "数值")],
                       [{"key": k, "label": self.figure_labels[k], "value": v} for k, v in self.figures.items()])

    def as_json(self) -> dict[str, Any]:
        q = self.query
        return {"report": self.name, "title": self.title, "from": q.first.isoformat(), "to": q.last.isoformat(),
                "filters": {"department": q.department, "category": q.category,
                            "business_type": q.business_type, "channel": q.channel},
                **self.figures, "figures": self.figures, "figure_labels": self.figure_labels,
                "sections": [s.as_json() for s in self.sections], "notes": self.notes}


class Reports:
    """Runs one report on one read session."""

    def __init__(self, session: AsyncSession, router: Router, query: ReportQuery) -> None:
        self.s, self.router, self.q = session, router, query
        tz = router.calendar.timezone
        self.start, self.end = query.bounds(tz)
        self.d = Dialect(session.get_bind().dialect.name, tz, self.start)

    async def run(self, name: str) -> Report:
        if name not in REPORTS:
            raise ReportError(f"unknown report {name!r}")
        return await getattr(self, name)()

    # --- shared pieces ------------------------------------------------------------------------------

    def ticket_where(self, t: Any = Ticket) -> list[Any]:
        q = self.q
        where = [t.created_at >= self.start, t.created_at < self.end]
        if q.department_id is not None:
            where.append(t.department_id == q.department_id)
        if q.category:
            where.append(t.category == q.category)
        if q.business_type:
            where.append(t.business_type == q.business_type)
        if q.channel:
            where.append(t.channel == q.channel)
        return where

    def ticket_scope(self, t: Any = Ticket) -> list[Any]:
        """The filters without the date range (for "now" figures such as overdue tickets)."""
        return self.ticket_where(t)[2:]

    async def rows(self, stmt: Any) -> list[Any]:
        return list((await self.s.execute(stmt)).all())

    async def department_names(self) -> dict[int, tuple[str, str]]:
        return {i: (code, name) for i, code, name in await self.rows(
            select(Department.id, Department.code, Department.name).order_by(Department.id))}

    def bt_name(self, code: str) -> str:
        bt = self.router.spec.business_types.get(code)
        return bt.name if bt else code

    def late(self, done: Any, due: Any) -> Any:
        """Late: done after the due time, or not done and the due time has passed."""
        return or_(and_(done.is_not(None), done > due), and_(done.is_(None), due < self.q.now))

    @staticmethod
    def count_if(condition: Any) -> Any:
        return func.sum(case((condition, 1), else_=0))

    @staticmethod
    def minutes(seconds: float | None) -> float | None:
        return None if seconds is None else round(float(seconds) / 60, 1)

    # --- workload ------------------------------------------------------------------------------------

    async def workload(self) -> Report:
        r = Report("workload", "受理量", self.q)
        day, hour = self.d.local_day(Ticket.created_at), self.d.local_hour(Ticket.created_at)
        by_time = await self.rows(select(day, hour, func.count()).where(*self.ticket_where()).group_by(day, hour))
        per_day: dict[str, int] = {}
        heat = [[0] * 24 for _ in range(7)]
        for d, h, n in by_time:
            per_day[d] = per_day.get(d, 0) + n
            heat[dt.date.fromisoformat(d).weekday()][int(h)] += n
        total = sum(per_day.values())
        r.figure("tickets_received", "受理工单数", total)
        days = []
        d = self.q.first
        while d <= self.q.last:
            days.append({"date": d.isoformat(), "count": per_day.get(d.isoformat(), 0)})
            d += dt.timedelta(days=1)
        r.figure("daily_average", "日均受理量", round(total / len(days), 1) if days else 0)
        r.sections.append(Section("by_day", "每日受理量", [("date", "日期"), ("count", "工单数")], days,
                                  {"type": "line", "x": "date", "y": ["count"]}))
        r.sections.append(Section(
            "heatmap", "受理时段分布（星期 × 小时）", [("weekday", "星期")] + [(f"h{h}", f"{h}时") for h in range(24)],
            [{"weekday": WEEKDAYS[w], **{f"h{h}": heat[w][h] for h in range(24)}} for w in range(7)],
            {"type": "heatmap", "y": "weekday"}))

        dims = await self.rows(select(Ticket.category, Ticket.business_type, Ticket.channel, Ticket.department_id,
                                      func.count()).where(*self.ticket_where())
                               .group_by(Ticket.category, Ticket.business_type, Ticket.channel, Ticket.department_id))
        spec = self.router.spec
        cats = {c: 0 for c in spec.categories}
        bts = {b: 0 for b in spec.business_types}
        chans = {info.name: 0 for info in channels.infos()}
        depts_n: dict[int, int] = {}
        for cat, bt, ch, dept, n in dims:
            cats[cat] = cats.get(cat, 0) + n
            bts[bt] = bts.get(bt, 0) + n
            chans[ch] = chans.get(ch, 0) + n
            depts_n[dept] = depts_n.get(dept, 0) + n
        labels = {info.name: info.label for info in channels.infos()}
        depts = await self.department_names()
        bar = {"type": "bar", "x": "name", "y": ["count"]}
        r.sections.append(Section("by_category", "按类别", [("name", "类别"), ("count", "工单数")],
                                  [{"code": c, "name": spec.categories[c].name if c in spec.categories else c,
                                    "count": n} for c, n in cats.items()],
                                  {"type": "pie", "x": "name", "y": ["count"]}))
        r.sections.append(Section("by_business_type", "按业务类型", [("name", "业务类型"), ("count", "工单数")],
                                  sorted(({"code": b, "name": self.bt_name(b), "count": n} for b, n in bts.items()),
                                         key=lambda row: -row["count"]), bar))
        r.sections.append(Section("by_channel", "按受理渠道", [("name", "渠道"), ("count", "工单数")],
                                  [{"code": c, "name": labels.get(c, c), "count": n} for c, n in chans.items()],
                                  {"type": "pie", "x": "name", "y": ["count"]}))
        r.sections.append(Section("by_department", "按责任部门", [("name", "部门"), ("count", "工单数")],
                                  [{"code": code, "name": name, "count": depts_n.get(i, 0)}
                                   for i, (code, name) in depts.items()
                                   if self.q.department_id in (None, i)], bar))
        return r

    # --- timeliness ----------------------------------------------------------------------------------

    async def timeliness(self) -> Report:
        r = Report("timeliness", "时效", self.q)
        t = Ticket
        resp_ok = and_(t.responded_at.is_not(None), t.responded_at <= t.response_due_at)
        res_ok = and_(t.resolved_at.is_not(None), t.resolved_at <= t.resolution_due_at)
        per_type = await self.rows(
            select(t.business_type, func.count(), self.count_if(resp_ok),
                   self.count_if(self.late(t.responded_at, t.response_due_at)), self.count_if(res_ok),
                   self.count_if(self.late(t.resolved_at, t.resolution_due_at)))
            .where(*self.ticket_where()).group_by(t.business_type))
        respond = {k: (n, p50, p90) for k, n, p50, p90 in await self.rows(percentiles(
            t.business_type, self.d.seconds(t.created_at, t.responded_at), self.ticket_where()))}
        resolve = {k: (n, p50, p90) for k, n, p50, p90 in await self.rows(percentiles(
            t.business_type, self.d.seconds(t.created_at, t.resolved_at), self.ticket_where()))}
        totals = [0, 0, 0, 0, 0]
        rows = []
        for bt, n, r_ok, r_late, s_ok, s_late in sorted(per_type, key=lambda row: -row[1]):
            r_ok, r_late, s_ok, s_late = int(r_ok or 0), int(r_late or 0), int(s_ok or 0), int(s_late or 0)
            for i, v in enumerate((n, r_ok, r_late, s_ok, s_late)):
                totals[i] += v
            rp, sp = respond.get(bt, (0, None, None)), resolve.get(bt, (0, None, None))
            rows.append({"code": bt, "name": self.bt_name(bt), "received": n,
                         "response_on_time": r_ok, "response_late": r_late,
                         "on_time_response_rate": rate(r_ok, r_ok + r_late),
                         "resolution_on_time": s_ok, "resolution_late": s_late,
                         "on_time_resolution_rate": rate(s_ok, s_ok + s_late),
                         "respond_median_min": self.minutes(rp[1]), "respond_p90_min": self.minutes(rp[2]),
                         "resolve_median_min": self.minutes(sp[1]), "resolve_p90_min": self.minutes(sp[2])})
        n, r_ok, r_late, s_ok, s_late = totals
        r.figure("tickets_received", "受理工单数", n)
        r.figure("on_time_response_rate", "按时响应率", rate(r_ok, r_ok + r_late))
        r.figure("on_time_resolution_rate", "按时办结率", rate(s_ok, s_ok + s_late))
        r.sections.append(Section(
            "by_business_type", "各业务类型时效",
            [("name", "业务类型"), ("received", "受理数"), ("on_time_response_rate", "按时响应率"),
             ("on_time_resolution_rate", "按时办结率"), ("response_late", "响应超时"), ("resolution_late", "办结超时"),
             ("respond_median_min", "响应用时中位数(分)"), ("respond_p90_min", "响应用时P90(分)"),
             ("resolve_median_min", "办结用时中位数(分)"), ("resolve_p90_min", "办结用时P90(分)")],
            rows, {"type": "bar", "x": "name", "y": ["on_time_response_rate", "on_time_resolution_rate"],
                   "percent": True},
            "按时：在工单记载的时限内完成（时限按 config/routing.yml 与工作日历计算）；未完成且已过时限的计为超时，"
            "未到时限的不计入。用时自受理起算，按最近秩取中位数与P90。"))
        await self._on_site(r)

        overdue = await self.rows(select(t.department_id, func.count()).where(
            t.status.in_(OPEN_STATUSES), t.resolution_due_at < self.q.now, *self.ticket_scope())
            .group_by(t.department_id))
        over = dict(overdue)
        depts = await self.department_names()
        r.figure("overdue_open_now", "当前超时未办结", sum(over.values()))
        r.sections.append(Section("overdue_by_department", "当前超时未办结工单（按部门）",
                                  [("name", "部门"), ("count", "工单数")],
                                  [{"code": code, "name": name, "count": over.get(i, 0)}
                                   for i, (code, name) in depts.items() if self.q.department_id in (None, i)],
                                  {"type": "bar", "x": "name", "y": ["count"]}, "此刻的状态，不受日期范围影响。"))

        e = TicketEvent
        level = self.d.json_text(e.data, "step")
        esc = await self.rows(select(level, func.count()).join(t, t.id == e.ticket_id).where(
            e.action == "escalate", e.at >= self.start, e.at < self.end, *self.ticket_scope()).group_by(level))
        counts = dict(esc)
        steps = self.router.spec.escalation.steps
        r.figure("escalations", "督办次数", sum(counts.values()))
        r.sections.append(Section("escalations", "督办（按级别）",
                                  [("level", "级别"), ("name", "督办事项"), ("count", "次数")],
                                  [{"level": i + 1, "step": s.name, "name": s.label, "count": counts.get(s.name, 0)}
                                   for i, s in enumerate(steps)],
                                  {"type": "bar", "x": "name", "y": ["count"]}, "按督办发生时间计入日期范围。"))
        return r

    async def _on_site(self, r: Report) -> None:
        """按时到场率 for repairs, once tickets carry on_site_due_at and arrived_at."""
        due, arrived = getattr(Ticket, "on_site_due_at", None), getattr(Ticket, "arrived_at", None)
        if due is None or arrived is None:
            r.notes.append("按时到场率：工单尚无到场时限与到场时间字段（on_site_due_at / arrived_at），暂不统计。")
            return
        t = Ticket
        ok_, late_ = await self._one(select(
            self.count_if(and_(arrived.is_not(None), arrived <= due)),
            self.count_if(and_(due.is_not(None), self.late(arrived, due)))).where(
            *self.ticket_where(), t.category == "repair"))
        r.figure("on_time_arrival_rate", "按时到场率", rate(int(ok_ or 0), int(ok_ or 0) + int(late_ or 0)))

    async def _one(self, stmt: Any) -> Any:
        return (await self.s.execute(stmt)).one()

    # --- quality -------------------------------------------------------------------------------------

    def callback_answer(self, t: Any = Ticket) -> Any:
        """The callback's answer per ticket — today from the ticket's 1-5 rating (4-5 满意, 3 基本满意,
        1-2 不满意; a callback without a rating: not reached). When callback tasks with their own
        answers exist, this one expression (and `surveyed`) is what changes."""
        return case((t.satisfaction >= 4, "satisfied"), (t.satisfaction == 3, "basically_satisfied"),
                    (t.satisfaction <= 2, "dissatisfied"), (t.callback_at.is_not(None), "unreachable"), else_=None)

    @staticmethod
    def surveyed(t: Any = Ticket) -> Any:
        return t.callback_at.is_not(None)

    async def quality(self) -> Report:
        r = Report("quality", "服务质量", self.q)
        t = Ticket
        answer = self.callback_answer()
        resolved_ever = or_(t.resolved_at.is_not(None), t.status.in_(RESOLVED_STATUSES), t.reopen_count > 0)
        per_dept = await self.rows(select(
            t.department_id, func.count(), self.count_if(resolved_ever), self.count_if(self.surveyed()),
            *[self.count_if(answer == a) for a in ANSWER_LABELS],
            self.count_if(t.reopen_count > 0), self.count_if(and_(t.status == "closed", t.reopen_count == 0)),
            self.count_if(t.category == "complaint"))
            .where(*self.ticket_where()).group_by(t.department_id))
        depts = await self.department_names()
        keys = ["received", "resolved", "surveyed", *ANSWER_LABELS, "reopened", "closed_first_time", "complaints"]
        total = dict.fromkeys(keys, 0)
        dept_rows = []
        for row in per_dept:
            values = dict(zip(keys, (int(v or 0) for v in row[1:]), strict=True))
            for k in keys:
                total[k] += values[k]
            code, name = depts.get(row[0], ("?", "?"))
            dept_rows.append({"code": code, "name": name, **values, **self._quality_rates(values)})
        rates = self._quality_rates(total)
        r.figure("resolved", "已办结", total["resolved"])
        r.figure("surveyed", "已回访", total["surveyed"])
        r.figure("callback_rate", "回访率", rates["callback_rate"])
        r.figure("answered", "回访有效答复", rates["answered"])
        r.figure("satisfaction_rate", "满意率", rates["satisfaction_rate"])
        r.figure("dissatisfied_share", "不满意占比", rates["dissatisfied_share"])
        r.figure("reopen_rate", "重办率", rates["reopen_rate"])
        r.sections.append(Section("satisfaction", "回访结果", [("name", "答复"), ("count", "件数")],
                                  [{"code": a, "name": label, "count": total[a]} for a, label in ANSWER_LABELS.items()],
                                  {"type": "pie", "x": "name", "y": ["count"]},
                                  "满意率 =（满意 + 基本满意）÷ 有效答复；回访率 = 已回访 ÷ 已办结；"
                                  "重办率 = 重办工单 ÷ 已办结。目前按工单回访评分（1–5）归类：4–5 满意，"
                                  "3 基本满意，1–2 不满意，回访未评分计为未联系上。"))
        r.sections.append(Section(
            "by_department", "各部门服务质量",
            [("name", "部门"), ("received", "受理数"), ("resolved", "已办结"), ("surveyed", "已回访"),
             ("callback_rate", "回访率"), ("satisfaction_rate", "满意率"), ("dissatisfied_share", "不满意占比"),
             ("reopen_rate", "重办率")], sorted(dept_rows, key=lambda x: x["code"]),
            {"type": "bar", "x": "name", "y": ["callback_rate", "satisfaction_rate", "reopen_rate"], "percent": True}))

        fcr = await self._first_contact(total)
        r.figure("first_contact_resolution_rate", "一次解决率", rate(fcr["resolved"], fcr["contacts"]))
        r.sections.append(Section("first_contact", "一次解决率构成", [("name", "来源"), ("contacts", "接触数"),
                                                                   ("resolved", "一次解决")], fcr["rows"],
                                  {"type": "bar", "x": "name", "y": ["contacts", "resolved"]}, fcr["note"]))

        accounts = int((await self.s.execute(select(func.count()).select_from(Customer)
                                             .where(Customer.status == "active"))).scalar_one())
        r.figure("complaints", "投诉件数", total["complaints"])
        r.figure("accounts", "在册用户数", accounts)
        r.figure("complaints_per_10k_accounts", "万户投诉量",
                 round(total["complaints"] * 10000 / accounts, 2) if accounts else None)
        if not self.q.ticket_filtered and not self.q.own_department_only:
            await self._opinion_and_incidents(r)
        return r

    async def _opinion_and_incidents(self, r: Report) -> None:
        """舆情 and incidents of the period: the city-wide picture, so not with a department or type filter."""
        a = OpinionAlert
        alerts = (await self.s.execute(select(a.words, a.acknowledged_at).where(
            a.created_at >= self.start, a.created_at < self.end))).all()
        r.figure("opinion_alerts", "舆情预警", len(alerts))
        r.figure("opinion_alerts_acknowledged", "舆情已知悉", sum(1 for _, ack in alerts if ack is not None))
        words: dict[str, int] = {}
        for found, _ in alerts:
            for word in found or []:
                words[str(word)] = words.get(str(word), 0) + 1
        r.sections.append(Section("opinion_words", "舆情预警（按触发词）", [("name", "触发词"), ("count", "次数")],
                                  [{"name": w, "count": n} for w, n in sorted(words.items(), key=lambda x: -x[1])],
                                  {"type": "bar", "x": "name", "y": ["count"]},
                                  "一条消息含多个触发词时每个词各计一次；舆情预警数按消息计。"))
        i = Incident
        reports = select(func.count()).select_from(IncidentReport).where(
            IncidentReport.incident_id == i.id).scalar_subquery()
        incidents = (await self.s.execute(select(i.status, func.count(), func.sum(reports)).where(
            i.detected_at >= self.start, i.detected_at < self.end).group_by(i.status))).all()
        by_status = {status: (int(n), int(linked or 0)) for status, n, linked in incidents}
        confirmed = [by_status.get(k, (0, 0)) for k in ("active", "ended")]
        r.figure("incidents_confirmed", "确认事件", sum(n for n, _ in confirmed))
        r.figure("incident_reports", "并入事件的报告", sum(linked for _, linked in confirmed))
        r.figure("incidents_dismissed", "排除的疑似事件", by_status.get("dismissed", (0, 0))[0])

    @staticmethod
    def _quality_rates(v: dict[str, int]) -> dict[str, Any]:
        answered = v["satisfied"] + v["basically_satisfied"] + v["dissatisfied"] + v["unclear"]
        return {"answered": answered, "callback_rate": rate(v["surveyed"], v["resolved"]),
                "satisfaction_rate": rate(v["satisfied"] + v["basically_satisfied"], answered),
                "dissatisfied_share": rate(v["dissatisfied"], answered),
                "reopen_rate": rate(v["reopened"], v["resolved"])}

    async def _first_contact(self, ticket_totals: dict[str, int]) -> dict[str, Any]:
        """一次解决: a contact the bot or the IVR answered with no ticket and no person, or whose
        ticket was closed without a reopen; over every contact (conversations, calls, and tickets
        that came from neither). With a department, category or business-type filter only tickets count."""
        if self.q.ticket_filtered:
            return {"contacts": ticket_totals["received"], "resolved": ticket_totals["closed_first_time"],
                    "rows": [{"name": "工单", "contacts": ticket_totals["received"],
                              "resolved": ticket_totals["closed_first_time"]}],
                    "note": "按部门、类别或业务类型筛选时只统计工单：归档且未重办的工单 ÷ 受理工单。"}
        t, c, call = Ticket, Conversation, Call
        closed_first = and_(t.status == "closed", t.reopen_count == 0)
        conv_where = [c.created_at >= self.start, c.created_at < self.end]
        if self.q.channel:
            conv_where.append(c.channel == self.q.channel)
        has_ticket = exists().where(t.conversation_id == c.id)
        conv_n, conv_self, conv_ticket = await self._one(select(
            func.count(), self.count_if(and_(c.agent_id.is_(None), c.handoff_reason.is_(None), ~has_ticket)),
            self.count_if(exists().where(t.conversation_id == c.id, closed_first))).where(*conv_where))
        calls_n = calls_self = calls_ticket = 0
        if self.q.channel in (None, "phone"):
            calls_n, calls_self, calls_ticket = await self._one(select(
                func.count(), self.count_if(call.outcome == "self_served"),
                self.count_if(exists().where(t.id == call.ticket_id, closed_first))).where(
                call.started_at >= self.start, call.started_at < self.end))
        from_call = exists().where(call.ticket_id == t.id)
        own_n, own_closed = await self._one(select(func.count(), self.count_if(closed_first)).where(
            *self.ticket_where(), t.conversation_id.is_(None), ~from_call))
        rows = [
            {"name": "智能客服会话", "contacts": int(conv_n or 0),
             "resolved": int(conv_self or 0) + int(conv_ticket or 0)},
            {"name": "IVR来电", "contacts": int(calls_n or 0),
             "resolved": int(calls_self or 0) + int(calls_ticket or 0)},
            {"name": "其他渠道直接受理的工单", "contacts": int(own_n or 0), "resolved": int(own_closed or 0)},
        ]
        return {"contacts": sum(x["contacts"] for x in rows), "resolved": sum(x["resolved"] for x in rows),
                "rows": rows,
                "note": "一次解决：智能客服或IVR自助答复（未建工单、未转人工），或所建工单归档且未重办。"}

    # --- people --------------------------------------------------------------------------------------

    async def people(self) -> Report:
        r = Report("people", "人员绩效", self.q)
        if not self.q.own_department_only:
            await self._agents(r)
        await self._departments(r)
        return r

    async def _agents(self, r: Report) -> None:
        e, c = ConversationEvent, Conversation
        in_channel = [exists().where(c.id == e.conversation_id, c.channel == self.q.channel)] if self.q.channel \
            else []
        where = [e.at >= self.start, e.at < self.end, e.actor_id.is_not(None), *in_channel]
        counts = await self.rows(select(e.actor_id, self.count_if(e.action == "close"),
                                        self.count_if(e.action == "reply"))
                                 .where(*where, e.action.in_(("close", "reply"))).group_by(e.actor_id))
        # Who a conversation came to: the agent who took it over (接入), or the one the presence-based
        # round-robin or a supervisor gave it to (the event's to_agent_id; the actor is the system or
        # the supervisor).
        agent = case((e.action == "take_over", e.actor_id),
                     else_=cast(self.d.json_text(e.data, "to_agent_id"), Integer))
        came = [e.at >= self.start, e.at < self.end, e.action.in_(RECEIVE_ACTIONS), agent.is_not(None),
                *in_channel]
        received = dict(await self.rows(select(agent, func.count()).where(*came).group_by(agent)))
        x = aliased(ConversationEvent)
        first_reply = select(func.min(x.at)).where(x.conversation_id == e.conversation_id, x.actor_id == agent,
                                                   x.action == "reply", x.at >= e.at).scalar_subquery()
        # Until the conversation closes, goes back to the bot, or is given to someone else.
        ended = select(func.min(x.at)).where(
            x.conversation_id == e.conversation_id, x.at >= e.at,
            or_(x.action.in_(("close", "hand_back")), and_(x.action.in_(RECEIVE_ACTIONS), x.id > e.id))
        ).scalar_subquery()
        reply_p = {k: (p50, p90) for k, _n, p50, p90 in await self.rows(
            percentiles(agent, self.d.seconds(e.at, first_reply), came))}
        handle_p = {k: (p50, p90) for k, _n, p50, p90 in await self.rows(
            percentiles(agent, self.d.seconds(e.at, ended), came))}
        rate_where = [e.action == "rate", e.at >= self.start, e.at < self.end, c.agent_id.is_not(None)]
        if self.q.channel:
            rate_where.append(c.channel == self.q.channel)
        ratings = {k: (n, avg) for k, n, avg in await self.rows(
            select(c.agent_id, func.count(c.satisfaction), func.avg(c.satisfaction))
            .select_from(e).join(c, c.id == e.conversation_id).where(*rate_where).group_by(c.agent_id))}
        te = TicketEvent
        created = dict(await self.rows(select(te.actor_id, func.count()).where(
            te.action == "create", te.actor_kind == "staff", te.at >= self.start, te.at < self.end)
            .group_by(te.actor_id)))
        ids = {row[0] for row in counts} | set(received) | set(ratings) | set(created)
        names = {i: (u, n) for i, u, n in await self.rows(
            select(Staff.id, Staff.username, Staff.display_name).where(Staff.id.in_(ids or {0})))}
        by_id = {row[0]: row[1:] for row in counts}
        rows = []
        for sid in sorted(ids, key=lambda i: names.get(i, ("", ""))[0]):
            closed, replies = (int(v or 0) for v in by_id.get(sid, (0, 0)))
            took = int(received.get(sid, 0))
            rp, hp = reply_p.get(sid, (None, None)), handle_p.get(sid, (None, None))
            n_r, avg = ratings.get(sid, (0, None))
            rows.append({"username": names.get(sid, ("?", ""))[0], "name": names.get(sid, ("", "?"))[1],
                         "taken_over": took, "replies": replies,
                         "first_reply_median_s": None if rp[0] is None else round(float(rp[0])),
                         "first_reply_p90_s": None if rp[1] is None else round(float(rp[1])),
                         "handling_median_min": self.minutes(hp[0]), "handling_p90_min": self.minutes(hp[1]),
                         "closed": closed, "ratings": int(n_r or 0),
                         "rating_average": None if avg is None else round(float(avg), 2),
                         "tickets_created": int(created.get(sid, 0))})
        r.figure("conversations_taken_over", "人工接入会话", sum(x["taken_over"] for x in rows))
        r.sections.append(Section(
            "agents", "坐席绩效",
            [("name", "坐席"), ("username", "用户名"), ("taken_over", "接入会话"),
             ("first_reply_median_s", "首次回复中位数(秒)"),
             ("first_reply_p90_s", "首次回复P90(秒)"), ("handling_median_min", "处理时长中位数(分)"),
             ("handling_p90_min", "处理时长P90(分)"), ("closed", "结束会话"), ("ratings", "收到评价"),
             ("rating_average", "平均评分"), ("tickets_created", "创建工单")],
            rows, {"type": "bar", "x": "name", "y": ["taken_over", "closed", "tickets_created"]},
            "接入会话：坐席自己接入的，加上按在线状态自动分配或班长转派给该坐席的。首次回复：接入会话到该坐席在此会话中的"
            "第一条回复；处理时长：接入到结束、转回智能客服或转给他人。"))

    async def _departments(self, r: Report) -> None:
        t = Ticket
        res_ok = and_(t.resolved_at.is_not(None), t.resolved_at <= t.resolution_due_at)
        late = self.late(t.resolved_at, t.resolution_due_at)
        per = await self.rows(select(t.department_id, func.count(), self.count_if(t.resolved_at.is_not(None)),
                                     self.count_if(res_ok), self.count_if(late))
                              .where(*self.ticket_where()).group_by(t.department_id))
        te = TicketEvent
        dept_of_event = func.coalesce(Staff.department_id, t.department_id)
        events = await self.rows(
            select(dept_of_event, self.count_if(te.action.in_(RETURN_ACTIONS)),
                   self.count_if(te.action.in_(EXTENSION_ACTIONS)))
            .join(t, t.id == te.ticket_id).outerjoin(Staff, Staff.id == te.actor_id)
            .where(te.action.in_(RETURN_ACTIONS + EXTENSION_ACTIONS), te.at >= self.start, te.at < self.end,
                   *self.ticket_scope())
            .group_by(dept_of_event))
        ev = {d: (int(a or 0), int(b or 0)) for d, a, b in events}
        got = {d: (n, int(s or 0), int(ok or 0), int(late or 0)) for d, n, s, ok, late in per}
        rows = []
        for i, (code, name) in (await self.department_names()).items():
            if self.q.department_id not in (None, i):
                continue
            n, solved, ok_, late_ = got.get(i, (0, 0, 0, 0))
            returns, extensions = ev.get(i, (0, 0))
            rows.append({"code": code, "name": name, "received": n, "resolved": solved,
                         "on_time_resolution_rate": rate(ok_, ok_ + late_), "returns": returns,
                         "extensions": extensions})
        r.sections.append(Section(
            "departments", "部门绩效",
            [("name", "部门"), ("received", "受理"), ("resolved", "办结"), ("on_time_resolution_rate", "按时办结率"),
             ("returns", "退回"), ("extensions", "延期")],
            rows, {"type": "bar", "x": "name", "y": ["received", "resolved", "returns", "extensions"]},
            "退回、延期：审计记录中的退单（return）与延期申请（request_extension）。"))

    # --- channels ------------------------------------------------------------------------------------

    async def channels(self) -> Report:
        r = Report("channels", "渠道", self.q)
        if self.q.channel in (None, "phone"):
            await self._ivr(r)
        await self._bot(r)
        return r

    async def _ivr(self, r: Report) -> None:
        call = Call
        node = self.d.json_last(call.menu_path)
        length = self.d.seconds(func.coalesce(call.answered_at, call.started_at), call.ended_at)
        rows = await self.rows(select(call.outcome, node, func.count(), self.count_if(call.answered_at.is_not(None)),
                                      func.sum(length), func.count(length))
                               .where(call.started_at >= self.start, call.started_at < self.end)
                               .group_by(call.outcome, node))
        total = answered = timed = 0
        seconds = 0.0
        outcomes: dict[str | None, int] = {}
        self_served: dict[str, int] = {}
        abandoned: dict[str, int] = {}
        for outcome, last, n, ans, secs, with_len in rows:
            total += n
            answered += int(ans or 0)
            seconds += float(secs or 0)
            timed += int(with_len or 0)
            outcomes[outcome] = outcomes.get(outcome, 0) + n
            where = last or "（未进入菜单）"
            if outcome == "self_served":
                self_served[where] = self_served.get(where, 0) + n
            if outcome == "abandoned":
                abandoned[where] = abandoned.get(where, 0) + n
        r.figure("calls", "来电", total)
        r.figure("calls_answered", "接通", answered)
        r.figure("calls_self_served", "自助服务", outcomes.get("self_served", 0))
        r.figure("calls_transferred", "转人工", outcomes.get("transferred", 0))
        r.figure("voicemails", "语音留言", outcomes.get("voicemail", 0))
        r.figure("calls_abandoned", "中途挂机", outcomes.get("abandoned", 0))
        r.figure("average_call_seconds", "平均通话时长(秒)", round(seconds / timed, 1) if timed else None)
        r.sections.append(Section("ivr_outcomes", "来电结果", [("name", "结果"), ("count", "来电数")],
                                  [{"code": k or "", "name": OUTCOME_LABELS.get(k, k or ""), "count": v}
                                   for k, v in sorted(outcomes.items(), key=lambda kv: -kv[1])],
                                  {"type": "pie", "x": "name", "y": ["count"]}))
        bar = {"type": "bar", "x": "node", "y": ["count"]}
        def by_count(counts: dict[str, int]) -> list[dict[str, Any]]:
            return [{"node": k, "count": v} for k, v in sorted(counts.items(), key=lambda kv: -kv[1])]
        r.sections.append(Section("ivr_self_served", "自助服务（按菜单项）",
                                  [("node", "菜单项"), ("count", "来电数")], by_count(self_served), bar))
        r.sections.append(Section("ivr_abandoned", "中途挂机（按挂机时所在菜单）",
                                  [("node", "菜单节点"), ("count", "来电数")], by_count(abandoned), bar))

    def _fallback(self, m: Any) -> Any:
        return or_(*[m.text.startswith(p, autoescape=True) for p in FALLBACK_PREFIXES])

    async def _bot(self, r: Report) -> None:
        c = Conversation
        where = [c.created_at >= self.start, c.created_at < self.end]
        if self.q.channel:
            where.append(c.channel == self.q.channel)
        reasons = await self.rows(select(c.handoff_reason, func.count(), self.count_if(c.agent_id.is_(None)))
                                  .where(*where).group_by(c.handoff_reason))
        total = sum(n for _, n, _ in reasons)
        contained = sum(int(no_agent or 0) for reason, _, no_agent in reasons if reason is None)
        handoffs = {reason: n for reason, n, _ in reasons if reason is not None}
        m, prev = Message, aliased(Message)
        msg_where = [m.created_at >= self.start, m.created_at < self.end, m.sender_kind == "bot", self._fallback(m)]
        if self.q.channel:
            msg_where.append(m.channel == self.q.channel)
        fallbacks = int((await self.s.execute(select(func.count()).where(*msg_where))).scalar_one())
        asked = select(func.max(prev.id)).where(prev.conversation_id == m.conversation_id, prev.id < m.id,
                                                prev.direction == "in", prev.sender_kind == "resident",
                                                prev.kind == "text").scalar_subquery()
        pairs = select(asked.label("asked_id")).where(*msg_where).subquery()
        q = aliased(Message)
        top = await self.rows(select(q.text, func.count(), func.max(q.conversation_id))
                              .join(pairs, pairs.c.asked_id == q.id).group_by(q.text)
                              .order_by(func.count().desc(), q.text).limit(50))
        r.figure("bot_conversations", "智能客服会话", total)
        r.figure("bot_contained", "智能客服独立解决（未转人工）", contained)
        r.figure("bot_containment_rate", "智能客服独立解决率", rate(contained, total))
        r.figure("bot_handoffs", "转人工", sum(handoffs.values()))
        r.figure("bot_fallbacks", "未能理解次数", fallbacks)
        r.sections.append(Section("bot_handoffs", "转人工原因", [("name", "原因"), ("count", "会话数")],
                                  [{"code": k, "name": HANDOFF_LABELS.get(k, k), "count": v}
                                   for k, v in sorted(handoffs.items(), key=lambda kv: -kv[1])],
                                  {"type": "pie", "x": "name", "y": ["count"]}))
        r.sections.append(Section(
            "bot_not_understood", "智能客服未能理解的前50条消息（训练待办）",
            [("text", "居民消息"), ("count", "次数"), ("conversation_id", "会话")],
            [{"text": text, "count": n, "conversation_id": conv, "link": f"/console#queue/{conv}"}
             for text, n, conv in top],
            {"type": "bar", "x": "text", "y": ["count"], "horizontal": True},
            "智能客服回复“抱歉，我没有理解…”之前居民发送的那条消息；会话列链接到该会话。"))


async def run_report(session: AsyncSession, router: Router, name: str, query: ReportQuery) -> Report:
    return await Reports(session, router, query).run(name)

