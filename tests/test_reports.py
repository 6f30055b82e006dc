"""Report figures against a small store whose answers are worked out by hand below (SQLite and PostgreSQL).

The tickets cross the Mid-Autumn holiday (25-27 Sep 2026), the close of business of a working
day (17:30), the National Day holiday (1-7 Oct) and the make-up working Saturday 10 Oct, so an
on-time figure that ignored the working-day calendar would come out different.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook
from sqlalchemy import select

from hotline.actors import Actor
from hotline.context import AppContext
from hotline.conversations import service
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import TicketDraft
from models import (
    Call,
    Conversation,
    ConversationEvent,
    Customer,
    Incident,
    IncidentReport,
    Message,
    OpinionAlert,
    Ticket,
    TicketEvent,
)
from tests.conftest import SERVICE, Clock, local, login

pytestmark = pytest.mark.asyncio
RANGE = "from=2026-09-01&to=2026-10-31"


async def _ticket(ctx: AppContext, clock: Clock, at: dt.datetime, actor: Actor, **draft: Any) -> Ticket:
    clock.now = at
    async with ctx.sessions.begin() as session:
        return await lifecycle.create_ticket(session, ctx.router, TicketDraft(**draft), actor, at)


async def _act(ctx: AppContext, clock: Clock, number: str, at: dt.datetime, action: str, actor: Actor,
               **arguments: Any) -> None:
    clock.now = at
    async with ctx.sessions.begin() as session:
        ticket = await lifecycle.get_ticket(session, number, actor)
        await lifecycle.transition(session, ctx.router, ticket, action, actor, at, **arguments)


async def _work(ctx: AppContext, clock: Clock, number: str, staff: dict[str, Actor], worker: str,
                assign: dt.datetime, resolve: dt.datetime | None) -> None:
    await _act(ctx, clock, number, assign, "assign", staff[worker], assignee=worker)
    if resolve is not None:
        await _act(ctx, clock, number, assign, "start", staff[worker])
        await _act(ctx, clock, number, resolve, "resolve", staff[worker], note="已处理")


@pytest.fixture
async def store(ctx: AppContext, clock: Clock, staff: dict[str, Actor]) -> dict[str, str]:
    """Seven tickets in range (T1-T7) and one before it (T0), two conversations, five calls.

    Beijing times. leak: respond 4 h, resolve 24 h; burst_main (urgent): 0.5 h / 24 h;
    complaint_service: respond by close of business (17:30) of the day or the next working day,
    resolve in 5 working days; inquiry_general: 1 / 2 working days.
    """
    a, sup = staff["agent1"], staff["sup"]
    n: dict[str, str] = {}
    async with ctx.sessions.begin() as session:
        for i in range(4):
            session.add(Customer(account_number=f"310000000{i}", name="居民", address="中山路", area="城区",
                                 meter_model="LXS-20", meter_size_dn=20, meter_serial=f"M{i}"))
    n["T0"] = (await _ticket(ctx, clock, local(2026, 8, 31, 23, 30), a, category="repair", business_type="leak",
                             description="月末漏水", channel="phone")).number
    # T1 leak, phone: responded after 60 min (due 13:00), resolved 20:00 (due next day 09:00); rated 5.
    t1 = await _ticket(ctx, clock, local(2026, 9, 24, 9, 0), a, category="repair", business_type="leak",
                       description="漏水一", channel="phone")
    n["T1"] = t1.number
    await _work(ctx, clock, t1.number, staff, "crew", local(2026, 9, 24, 10, 0), local(2026, 9, 24, 20, 0))
    await _act(ctx, clock, t1.number, local(2026, 9, 25, 10, 0), "callback", a, reached=True, satisfaction=5)
    await _act(ctx, clock, t1.number, local(2026, 9, 25, 10, 5), "close", a)
    # T2 leak, wechat: responded 14:00 (late), resolved next day 12:00 (late); rated 1; from conversation C2.
    t2 = await _ticket(ctx, clock, local(2026, 9, 24, 9, 0), a, category="repair", business_type="leak",
                       description="漏水二", channel="wechat")
    n["T2"] = t2.number
    await _work(ctx, clock, t2.number, staff, "crew", local(2026, 9, 24, 14, 0), local(2026, 9, 25, 12, 0))
    await _act(ctx, clock, t2.number, local(2026, 9, 25, 15, 0), "callback", a, reached=True, satisfaction=1)
    await _act(ctx, clock, t2.number, local(2026, 9, 25, 15, 5), "close", a)
    # T3 burst main, phone: 20 min, resolved 15:00; rated 2, reopened 25 Sep 10:00 (new due 26 Sep 10:00),
    # resolved again 25 Sep 18:00 (on time), rated 3, closed.
    t3 = await _ticket(ctx, clock, local(2026, 9, 24, 9, 0), a, category="repair", business_type="burst_main",
                       description="爆管", channel="phone")
    n["T3"] = t3.number
    await _work(ctx, clock, t3.number, staff, "crew", local(2026, 9, 24, 9, 20), local(2026, 9, 24, 15, 0))
    await _act(ctx, clock, t3.number, local(2026, 9, 25, 9, 0), "callback", a, reached=True, satisfaction=2)
    await _act(ctx, clock, t3.number, local(2026, 9, 25, 10, 0), "reopen", a, note="仍然漏水")
    await _act(ctx, clock, t3.number, local(2026, 9, 25, 10, 0), "start", staff["crew"])
    await _act(ctx, clock, t3.number, local(2026, 9, 25, 18, 0), "resolve", staff["crew"], note="已修复")
    await _act(ctx, clock, t3.number, local(2026, 9, 26, 9, 0), "callback", a, reached=True, satisfaction=3)
    await _act(ctx, clock, t3.number, local(2026, 9, 26, 9, 5), "close", a)
    # T4 complaint, web, Thu 24 Sep 18:00 (after closing): respond due Mon 28 Sep 17:30 (holiday 25-27),
    # resolve due 9 Oct 17:30 (28, 29, 30 Sep, 8, 9 Oct); answered 25 Sep, resolved 8 Oct: both on time.
    # Callback: not reached.
    t4 = await _ticket(ctx, clock, local(2026, 9, 24, 18, 0), sup, category="complaint",
                       business_type="complaint_service", description="服务态度", channel="web")
    n["T4"] = t4.number
    await _work(ctx, clock, t4.number, staff, "qian.manager", local(2026, 9, 25, 10, 0), local(2026, 10, 8, 11, 0))
    await _act(ctx, clock, t4.number, local(2026, 10, 8, 15, 0), "callback", a, reached=False)
    # T5 complaint, phone, 17:00: respond due 17:30 the same day, answered 17:45 (late); never resolved
    # (due 9 Oct 17:30): late and overdue now.
    t5 = await _ticket(ctx, clock, local(2026, 9, 24, 17, 0), sup, category="complaint",
                       business_type="complaint_service", description="投诉二", channel="phone")
    n["T5"] = t5.number
    await _work(ctx, clock, t5.number, staff, "qian.manager", local(2026, 9, 24, 17, 45), None)
    # T6 inquiry, counter, Fri 9 Oct 09:00: respond due Sat 10 Oct 17:30 (make-up working day), not
    # answered: late; resolve due Mon 12 Oct 17:30: not yet due at the report's "now".
    n["T6"] = (await _ticket(ctx, clock, local(2026, 10, 9, 9, 0), a, category="inquiry",
                             business_type="inquiry_general", description="咨询", channel="counter")).number
    # T7 leak, wechat, 1 Oct 00:30 Beijing (30 Sep 16:30 UTC): nothing done: late twice, overdue now.
    n["T7"] = (await _ticket(ctx, clock, local(2026, 10, 1, 0, 30), a, category="repair", business_type="leak",
                             description="节日漏水", channel="wechat")).number

    async with ctx.sessions.begin() as session:
        ids = {k: (await lifecycle.get_ticket(session, v, a)).id for k, v in n.items()}
        at = local(2026, 9, 24, 8, 0)
        c1 = Conversation(channel="web", external_user="u1", status="closed", created_at=at, updated_at=at)
        c2 = Conversation(channel="wechat", external_user="u2", status="closed", created_at=at, updated_at=at,
                          handoff_reason="fallback", agent_id=a.id, satisfaction=4)
        session.add_all([c1, c2])
        await session.flush()
        msgs = [(c1, "in", "resident", "查水费", 0), (c1, "out", "bot", "您的余额为12.30元。", 1),
                (c2, "in", "resident", "水表倒着转是怎么回事", 2),
                (c2, "out", "bot", "抱歉，我没有理解您的意思。您可以换个说法", 3),
                (c2, "in", "resident", "水表倒着转是怎么回事", 4),
                (c2, "out", "bot", "抱歉，我还是没能理解。正在为您转接人工客服，请稍候。", 5)]
        for conv, direction, sender, text, minute in msgs:
            session.add(Message(conversation_id=conv.id, channel=conv.channel, direction=direction,
                                sender_kind=sender, text=text, created_at=at + dt.timedelta(minutes=minute)))
            await session.flush()
        took = at + dt.timedelta(minutes=10)
        for action, seconds in (("take_over", 0), ("reply", 30), ("reply", 200), ("close", 600), ("rate", 700)):
            session.add(ConversationEvent(conversation_id=c2.id, at=took + dt.timedelta(seconds=seconds),
                                          action=action, actor_kind="staff" if action != "rate" else "resident",
                                          actor_id=a.id if action != "rate" else None, actor_name="agent1"))
        t2row = await session.get(Ticket, ids["T2"])
        assert t2row is not None
        t2row.conversation_id = c2.id
        start = local(2026, 9, 24, 7, 0)
        calls = [("self_served", ["主菜单", "余额查询"], 60, None), ("abandoned", ["主菜单", "报修"], 30, None),
                 ("transferred", ["主菜单", "人工服务"], 90, None),
                 ("ticket", ["主菜单", "报修", "管道漏水"], 120, ids["T1"]),
                 ("voicemail", ["主菜单", "投诉建议"], 100, None)]
        for i, (outcome, path, seconds, ticket_id) in enumerate(calls):
            begun = start + dt.timedelta(minutes=i)
            session.add(Call(sip_call_id=f"call-{i}", caller="13800000000", started_at=begun,
                             answered_at=begun + dt.timedelta(seconds=1),
                             ended_at=begun + dt.timedelta(seconds=1 + seconds), menu_path=path,
                             outcome=outcome, ticket_id=ticket_id))
        crew, sun = staff["crew"], staff["sun.repair"]
        for action, ticket, who in (("return", "T1", crew), ("request_extension", "T2", crew),
                                    ("approve_extension", "T2", sun)):
            session.add(TicketEvent(ticket_id=ids[ticket], at=local(2026, 9, 24, 12, 0), action=action,
                                    actor_kind="staff", actor_id=who.id, actor_name=who.name))
        for step, day in (("overdue", 9), ("overdue_level2", 10)):
            session.add(TicketEvent(ticket_id=ids["T5"], at=local(2026, 10, day, 17, 31), action="escalate",
                                    actor_kind="system", note="督办", data={"step": step, "level": 3}))
    clock.now = local(2026, 10, 12, 10, 0)
    return n


async def _get(client: TestClient, name: str, query: str = RANGE, headers: dict[str, str] | None = None,
               status: int = 200) -> dict[str, Any]:
    resp = await client.get(f"/api/reports/{name}?{query}", headers=SERVICE if headers is None else headers)
    assert resp.status == status, await resp.text()
    return await resp.json()


def _section(report: dict[str, Any], section: str) -> list[dict[str, Any]]:
    return next(s["rows"] for s in report["sections"] if s["id"] == section)


def _by(rows: list[dict[str, Any]], key: str) -> dict[Any, dict[str, Any]]:
    return {row[key]: row for row in rows}


async def test_workload_counts_by_beijing_day_hour_and_dimension(client: TestClient, store: dict[str, str]) -> None:
    r = await _get(client, "workload")
    assert r["tickets_received"] == 7  # T0 is 31 Aug Beijing time
    days = _by(_section(r, "by_day"), "date")
    assert (days["2026-09-24"]["count"], days["2026-10-01"]["count"], days["2026-10-09"]["count"]) == (5, 1, 1)
    assert len(days) == 61
    heat = _by(_section(r, "heatmap"), "weekday")
    assert (heat["周四"]["h9"], heat["周四"]["h17"], heat["周四"]["h18"], heat["周四"]["h0"], heat["周五"]["h9"]) == \
        (3, 1, 1, 1, 1)
    chans = {row["code"]: row["count"] for row in _section(r, "by_channel")}
    assert chans == {"phone": 3, "wechat": 2, "web": 1, "counter": 1, "gov12345": 0}  # every channel, zeros too
    cats = {row["code"]: row["count"] for row in _section(r, "by_category")}
    assert cats == {"repair": 4, "complaint": 2, "inquiry": 1, "billing": 0}
    depts = {row["code"]: row["count"] for row in _section(r, "by_department")}
    assert (depts["network_repair"], depts["cs_management"], depts["customer_service"], depts["meter"]) == (4, 2, 1, 0)
    # The last day of September ends at Beijing midnight: T7 (00:30 on 1 Oct) is October's.
    assert (await _get(client, "workload", "from=2026-09-01&to=2026-09-30"))["tickets_received"] == 5
    assert (await _get(client, "workload", RANGE + "&channel=wechat"))["tickets_received"] == 2
    assert (await _get(client, "workload", RANGE + "&business_type=leak"))["tickets_received"] == 3


async def test_timeliness_follows_the_stored_due_times_across_holidays(client: TestClient,
                                                                       store: dict[str, str]) -> None:
    r = await _get(client, "timeliness")
    # Response: T1, T3, T4 on time; T2, T5 late; T6 and T7 unanswered past due. Resolution: T1, T3, T4 on
    # time; T2 late, T5 and T7 unresolved past due; T6 not yet due (excluded).
    assert r["on_time_response_rate"] == round(3 / 7, 4)
    assert r["on_time_resolution_rate"] == 0.5
    types = _by(_section(r, "by_business_type"), "code")
    leak = types["leak"]
    assert (leak["received"], leak["response_on_time"], leak["response_late"]) == (3, 1, 2)
    assert (leak["respond_median_min"], leak["respond_p90_min"]) == (60.0, 300.0)
    assert (leak["resolve_median_min"], leak["resolve_p90_min"]) == (660.0, 1620.0)
    complaint = types["complaint_service"]
    assert (complaint["response_on_time"], complaint["response_late"]) == (1, 1)  # T4 across the holiday
    assert (complaint["resolution_on_time"], complaint["resolution_late"]) == (1, 1)
    assert types["inquiry_general"]["on_time_resolution_rate"] is None
    assert types["burst_main"]["resolve_median_min"] == 33 * 60.0  # to the second resolution
    overdue = {row["code"]: row["count"] for row in _section(r, "overdue_by_department")}
    # Now, whatever the range: T0 (before it) and T7 of network repair, T5 of cs_management.
    assert (overdue["network_repair"], overdue["cs_management"], overdue["customer_service"]) == (2, 1, 0)
    esc = {row["step"]: row["count"] for row in _section(r, "escalations")}
    assert (esc["overdue"], esc["overdue_level2"], esc["warning"]) == (1, 1, 0)
    if "on_time_arrival_rate" not in r:
        assert any("按时到场率" in note for note in r["notes"])


async def test_quality_rates(client: TestClient, store: dict[str, str]) -> None:
    r = await _get(client, "quality")
    # Resolved at least once: T1-T4; all four called back; answers 5 (满意), 1 (不满意), 3 (基本满意),
    # T4 not reached. One reopen (T3).
    assert (r["resolved"], r["surveyed"], r["callback_rate"]) == (4, 4, 1.0)
    assert (r["answered"], r["satisfaction_rate"], r["dissatisfied_share"]) == (3, round(2 / 3, 4), round(1 / 3, 4))
    assert r["reopen_rate"] == 0.25
    # Contacts: C1, C2, five calls, and T3-T7 (T1 came from a call, T2 from C2) = 12. At first contact:
    # C1 (bot only), C2 (its T2 closed, never reopened), the self-served call, the call whose T1 was closed.
    assert r["first_contact_resolution_rate"] == round(4 / 12, 4)
    assert (r["complaints"], r["accounts"], r["complaints_per_10k_accounts"]) == (2, 4, 5000.0)
    dept = _by(_section(r, "by_department"), "code")["network_repair"]
    assert (dept["received"], dept["resolved"], dept["reopen_rate"]) == (4, 3, round(1 / 3, 4))


async def test_quality_counts_opinion_alerts_and_incidents(client: TestClient, ctx: AppContext,
                                                           store: dict[str, str]) -> None:
    inside, before = local(2026, 9, 16, 10, 0), local(2026, 8, 20, 10, 0)
    async with ctx.sessions.begin() as session:
        session.add_all([
            OpinionAlert(words=["媒体", "曝光"], excerpt="再不修我就找媒体曝光", created_at=inside,
                         acknowledged_at=inside, acknowledged_by="sup"),
            OpinionAlert(words=["12345"], excerpt="我打12345投诉你们", created_at=inside),
            OpinionAlert(words=["媒体"], excerpt="before the range", created_at=before)])
        confirmed = Incident(status="ended", area="城东片区", kind="no_supply", business_type="no_water",
                             detected_at=inside)
        session.add_all([confirmed, Incident(status="dismissed", area="城西片区", kind="no_supply",
                                             business_type="no_water", detected_at=inside)])
        await session.flush()
        tickets = (await session.execute(select(Ticket.id).where(Ticket.number.in_(
            [store["T3"], store["T4"]])))).scalars().all()
        session.add_all(IncidentReport(incident_id=confirmed.id, ticket_id=t) for t in tickets)
    r = await _get(client, "quality")
    assert (r["opinion_alerts"], r["opinion_alerts_acknowledged"]) == (2, 1)
    assert _by(_section(r, "opinion_words"), "name")["媒体"]["count"] == 1
    assert (r["incidents_confirmed"], r["incident_reports"], r["incidents_dismissed"]) == (1, 2, 1)
    filtered = await _get(client, "quality", RANGE + "&category=repair")
    assert "opinion_alerts" not in filtered  # a city-wide figure, not a department's


async def test_people_and_channels(client: TestClient, store: dict[str, str]) -> None:
    r = await _get(client, "people")
    agent = _by(_section(r, "agents"), "username")["agent1"]
    assert (agent["taken_over"], agent["first_reply_median_s"], agent["handling_median_min"], agent["closed"]) == \
        (1, 30, 10.0, 1)
    assert (agent["ratings"], agent["rating_average"], agent["tickets_created"]) == (1, 4.0, 5)
    assert _by(_section(r, "agents"), "username")["sup"]["tickets_created"] == 2
    depts = _by(_section(r, "departments"), "code")
    repair = depts["network_repair"]
    assert (repair["received"], repair["resolved"], repair["on_time_resolution_rate"]) == (4, 3, 0.5)
    assert (repair["returns"], repair["extensions"]) == (1, 1)  # one request (its approval is not a second extension)
    assert (depts["cs_management"]["on_time_resolution_rate"], depts["customer_service"]["resolved"]) == (0.5, 0)

    c = await _get(client, "channels")
    assert (c["calls"], c["calls_answered"], c["calls_self_served"], c["calls_transferred"], c["voicemails"],
            c["calls_abandoned"], c["average_call_seconds"]) == (5, 5, 1, 1, 1, 1, 80.0)
    assert _section(c, "ivr_self_served") == [{"node": "余额查询", "count": 1}]
    assert _section(c, "ivr_abandoned") == [{"node": "报修", "count": 1}]
    assert (c["bot_conversations"], c["bot_contained"], c["bot_handoffs"], c["bot_fallbacks"]) == (2, 1, 1, 2)
    top = _section(c, "bot_not_understood")
    assert [(t["text"], t["count"]) for t in top] == [("水表倒着转是怎么回事", 2)]
    assert top[0]["link"].startswith("/console#queue/")



async def test_people_counts_conversations_given_by_presence_and_by_a_supervisor(
        client: TestClient, ctx: AppContext, clock: Clock, staff: dict[str, Actor]) -> None:
    clock.now = local(2026, 9, 24, 10, 0)
    online = await client.put("/api/presence", json={"status": "online"}, headers=await login(client, "agent1"))
    assert online.status == 200
    agent1, zhao = staff["agent1"], staff["zhao.supervisor"]

    async def waiting(who: str) -> int:
        conv_id = (await service.receive(ctx, "web", who, "我要找人工", to_bot=False)).conversation_id
        await service.handoff(ctx, conv_id, "requested", None)  # round-robin: to agent1, the one 在线
        return conv_id

    first = await waiting("resident-a")
    clock.advance(seconds=60)
    await service.agent_reply(ctx, first, agent1, "您好，请讲")
    clock.advance(seconds=300)
    await service.close(ctx, first, agent1)
    clock.advance(minutes=10)
    second = await waiting("resident-b")
    clock.advance(seconds=120)
    await service.reassign(ctx, second, staff["sup"], "zhao.supervisor")
    clock.advance(seconds=30)
    await service.agent_reply(ctx, second, zhao, "我是班长，您请讲")
    clock.advance(seconds=180)
    await service.close(ctx, second, zhao)

    rows = _by(_section(await _get(client, "people", "from=2026-09-24&to=2026-09-24"), "agents"), "username")
    # agent1 was given both by presence and answered the first after 60 s; handled 360 s and 120 s (until
    # the supervisor gave the second to zhao), nearest-rank median 2 min and p90 6 min.
    one = rows["agent1"]
    assert (one["taken_over"], one["first_reply_median_s"], one["handling_median_min"], one["handling_p90_min"],
            one["closed"]) == (2, 60, 2.0, 6.0, 1)
    two = rows["zhao.supervisor"]
    assert (two["taken_over"], two["first_reply_median_s"], two["handling_median_min"], two["closed"]) == \
        (1, 30, 3.5, 1)
    assert "sup" not in rows or rows["sup"]["taken_over"] == 0  # who reassigned did not take the conversation


async def test_exports_carry_the_same_figures(client: TestClient, store: dict[str, str]) -> None:
    resp = await client.get(f"/api/reports/timeliness?{RANGE}&format=csv", headers=SERVICE)
    assert resp.status == 200 and "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert ["按时办结率", "0.5"] in rows
    resp = await client.get(f"/api/reports/workload?{RANGE}&format=xlsx", headers=SERVICE)
    assert resp.status == 200
    book = load_workbook(io.BytesIO(await resp.read()))
    summary = book[book.sheetnames[0]]
    assert [c.value for c in summary[3]] == ["受理工单数", 7]
    assert "按受理渠道" in book.sheetnames


async def test_who_sees_what(client: TestClient, store: dict[str, str]) -> None:
    headers = await login(client, "crew")  # department staff of network_repair
    r = await _get(client, "workload", RANGE + "&department=network_repair", headers=headers)
    assert r["tickets_received"] == 4
    assert r["filters"]["department"] == "network_repair"
    r = await _get(client, "workload", headers=headers)  # forced to their own department
    assert r["tickets_received"] == 4 and [d["code"] for d in _section(r, "by_department")] == ["network_repair"]
    await _get(client, "workload", RANGE + "&department=meter", headers=headers, status=403)
    await _get(client, "channels", headers=headers, status=403)
    people = await _get(client, "people", headers=headers)
    assert [s["id"] for s in people["sections"]] == ["departments"]
    await _get(client, "workload", headers=await login(client, "agent1"), status=403)
    sup = await login(client, "sup")
    assert (await _get(client, "quality", headers=sup))["resolved"] == 4
    await _get(client, "nope", headers=sup, status=404)
    await _get(client, "workload", "from=2026-10-02&to=2026-10-01", headers=sup, status=422)
    await _get(client, "workload", "channel=fax", headers=sup, status=422)
    client.session.cookie_jar.clear()
    resp = await client.get("/api/reports/workload")
    assert resp.status == 401


async def test_default_range_is_this_month(client: TestClient, store: dict[str, str]) -> None:
    r = await _get(client, "workload", "")
    assert (r["from"], r["to"], r["tickets_received"]) == ("2026-10-01", "2026-10-12", 2)
