"""Incidents: reports of one kind from one area become one incident; confirmed, it tells every reporter
and links later reports; restoration resolves them all. Outages published from the console reach bound
residents; public-opinion words raise an alert."""
from __future__ import annotations

import asyncio
import datetime as dt

from sqlalchemy import select

from hotline.channels.base import Delivery
from hotline.conversations import service
from models import CallbackTask, Conversation, Customer, CustomerPhone, Message, Ticket
from tests.conftest import SERVICE, eventually, local, login

NO_WATER = {"category": "repair", "business_type": "no_water", "description": "家里没水了"}


class RecordingChannel:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def deliver(self, conversation: Conversation, message: Message) -> Delivery:
        self.sent.append((conversation.external_user, message.text))
        return Delivery("delivered")


async def _report(client, ctx, who: str, address: str = "定州市中山东路幸福家园3号楼", channel: str = "wechat",
                  business_type: str = "no_water") -> str:
    body = {**NO_WATER, "business_type": business_type, "address": address, "channel": channel}
    if channel == "wechat":
        received = await service.receive(ctx, "wechat", who, "家里没水了", to_bot=False)
        body["conversation_id"] = received.conversation_id
    else:
        body["phone"] = who
    resp = await client.post("/api/tickets", headers=SERVICE, json=body)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["number"]


async def _customer(ctx, account: str, name: str, address: str, area: str, phone: str) -> None:
    async with ctx.sessions.begin() as session:
        customer = Customer(account_number=account, name=name, address=address, area=area,
                            meter_model="LXS-20E", meter_size_dn=20, meter_serial=f"M{account[-2:]}")
        session.add(customer)
        await session.flush()
        session.add(CustomerPhone(customer_id=customer.id, phone=phone))


async def _incidents(client, status: str | None = None, expect: int | None = None) -> list[dict]:
    params = {"status": status} if status else {}

    async def listed() -> list[dict] | None:
        items = (await (await client.get("/api/incidents", params=params, headers=SERVICE)).json())["items"]
        return items if expect is None or (items and len(items[0]["reports"]) >= expect) else None

    return await eventually(listed) or []  # detection runs just after each report commits


async def _listed(client, status: str | None = None) -> list[dict]:
    """The incidents now, without waiting: for after `_detected` has seen the reports looked at."""
    params = {"status": status} if status else {}
    return (await (await client.get("/api/incidents", params=params, headers=SERVICE)).json())["items"]


async def _detected(ctx, reports: int) -> None:
    """Waits until detection has looked at this many reports since the service started (or fails)."""
    detection = ctx.health_checks["incident_detection"]
    assert await eventually(lambda: detection.runs >= reports), f"detection ran {detection.runs} times"
    assert detection.failures == 0, detection.last_error


async def _heard(ctx, who: str, phrase: str) -> bool:
    return any(phrase in t for t in await _told(ctx, who))


async def _told(ctx, who: str) -> list[str]:
    async with ctx.readers() as session:
        return list((await session.execute(select(Message.text).join(Conversation).where(
            Conversation.external_user == who, Message.sender_kind == "system").order_by(Message.id))).scalars())


async def test_a_cluster_of_reports_becomes_one_incident_that_closes_the_loop_for_everyone(
        client, ctx, staff, clock) -> None:
    ctx.channels["wechat"] = RecordingChannel()
    numbers = []
    for i in range(5):  # five WeChat residents and three callers from 城东片区 within ten minutes
        numbers.append(await _report(client, ctx, f"openid-east-{i}"))
        clock.advance(minutes=1)
    for i in range(3):
        numbers.append(await _report(client, ctx, f"1380000000{i}", address="建设路12号", channel="phone"))
        clock.advance(minutes=1)
    suspected = await _incidents(client, "suspected", expect=8)
    assert len(suspected) == 1 and sorted(suspected[0]["reports"]) == sorted(numbers)
    incident = suspected[0]
    assert incident["area"] == "城东片区" and incident["business_type"] == "no_water"

    headers = await login(client, "sun.repair")
    restore = local(2026, 9, 24, 18, 0).isoformat()
    confirmed = await client.post(f"/api/incidents/{incident['id']}/confirm", headers=headers, json={
        "expected_restore_at": restore, "text": "中山东路DN300主管道爆裂，正在抢修。"})
    assert confirmed.status == 200, await confirmed.text()
    assert (await confirmed.json())["residents_told"] == 5  # the WeChat reporters (callers hear the IVR)
    assert any("预计9月24日18:00恢复" in t for t in await _told(ctx, "openid-east-0"))
    outages = (await (await client.get("/api/outages", params={"area": "城东片区"}, headers=SERVICE)).json())
    assert any(o["title"] == incident["title"] for o in outages["items"])

    ninth = await _report(client, ctx, "openid-east-9")  # linked at once, told the expected time
    active = await _incidents(client, "active", expect=9)
    assert ninth in active[0]["reports"]
    await eventually(lambda: _heard(ctx, "openid-east-9", "无需重复报修"))
    assert any("无需重复报修" in t and ninth in t for t in await _told(ctx, "openid-east-9"))
    async with ctx.readers() as session:
        ninth_ticket = (await session.execute(select(Ticket).where(Ticket.number == ninth))).scalar_one()
    assert ninth_ticket.next_escalation_at is None  # not chased separately: the incident is

    other_area = await _report(client, ctx, "openid-west-1", address="定州市兴华路5号")
    other_kind = await _report(client, ctx, "openid-east-q", business_type="water_quality")
    active = await _incidents(client, "active")
    assert other_area not in active[0]["reports"] and other_kind not in active[0]["reports"]

    ended = await client.post(f"/api/incidents/{incident['id']}/end", headers=headers,
                              json={"resolution": "主管道已修复，供水恢复"})
    data = await ended.json()
    assert ended.status == 200 and sorted(data["resolved"]) == sorted([*numbers, ninth])
    async with ctx.readers() as session:
        statuses = set((await session.execute(select(Ticket.status).where(
            Ticket.number.in_([*numbers, ninth])))).scalars())
        tasks = (await session.execute(select(CallbackTask))).scalars().all()
    assert statuses == {"resolved"} and len(tasks) == 9  # every reporter gets a callback
    await eventually(lambda: _heard(ctx, "openid-east-3", "随区域抢修一并处理完毕"))
    assert any("随区域抢修一并处理完毕" in t for t in await _told(ctx, "openid-east-3"))
    trail = (await (await client.get(f"/api/events/incident/{incident['id']}", headers=SERVICE)).json())["items"]
    assert [e["action"] for e in trail if e["action"] != "link"] == ["raise", "confirm", "end"]


async def test_reports_arriving_at_the_same_moment_become_one_incident_with_all_of_them(client, ctx, staff) -> None:
    # Detections overlap: one raises the incident while the others look; none may be left out or doubled.
    numbers = await asyncio.gather(*(_report(client, ctx, f"openid-rush-{i}", address="朝阳路9号")
                                     for i in range(8)))
    suspected = await _incidents(client, "suspected", expect=8)
    assert len(suspected) == 1 and sorted(suspected[0]["reports"]) == sorted(numbers)


async def test_a_dismissed_cluster_is_not_raised_again_and_fewer_reports_raise_nothing(client, ctx, staff) -> None:
    for i in range(2):
        await _report(client, ctx, f"openid-south-{i}", address="南关大街1号")
    await _detected(ctx, 2)
    assert await _listed(client) == []  # below the threshold
    await _report(client, ctx, "openid-south-2", address="南关大街1号")
    suspected = await _incidents(client, "suspected", expect=3)
    headers = await login(client, "sup")
    resp = await client.post(f"/api/incidents/{suspected[0]['id']}/dismiss", headers=headers,
                             json={"note": "各户情况不同"})
    assert resp.status == 200
    await _report(client, ctx, "openid-south-3", address="南关大街1号")
    await _detected(ctx, 4)
    assert await _listed(client, "suspected") == []  # the same three are not counted again
    async with ctx.readers() as session:
        rearmed = (await session.execute(select(Ticket.next_escalation_at).where(
            Ticket.number == suspected[0]["reports"][0]))).scalar_one()
    assert rearmed is not None  # chased again as a separate ticket
    agent = await login(client, "agent1")
    refused = await client.post(f"/api/incidents/{suspected[0]['id']}/confirm", headers=agent, json={
        "expected_restore_at": local(2026, 9, 24, 18, 0).isoformat(), "text": "x"})
    assert refused.status == 403


async def test_reports_with_only_a_wechat_location_are_placed_by_the_areas_outline(client, ctx, staff) -> None:
    numbers = []
    for i in range(3):  # residents who sent their location (inside 城南片区's outline), no street words
        received = await service.receive(ctx, "wechat", f"openid-loc-{i}", "家里没水了", to_bot=False)
        resp = await client.post("/api/tickets", headers=SERVICE, json={
            **NO_WATER, "channel": "wechat", "conversation_id": received.conversation_id,
            "address": "我的位置", "latitude": 38.49 + i * 0.001, "longitude": 114.99})
        numbers.append((await resp.json())["number"])
    far = await client.post("/api/tickets", headers=SERVICE, json={
        **NO_WATER, "channel": "wechat", "phone": "13800001111", "latitude": 39.9, "longitude": 116.4})
    assert far.status == 201  # outside every outline: a report without an area, never linked
    suspected = await _incidents(client, "suspected", expect=3)
    assert len(suspected) == 1 and suspected[0]["area"] == "城南片区"
    assert sorted(suspected[0]["reports"]) == sorted(numbers)

    async def locate(**params: str) -> str | None:
        resp = await client.get("/api/areas/locate", params=params, headers=SERVICE)
        assert resp.status == 200
        return (await resp.json())["area"]
    assert await locate(address="定州市兴华路8号") == "城西片区"
    assert await locate(latitude="38.50", longitude="115.06") == "开发区"
    assert await locate(address="中山东路1号", latitude="38.50", longitude="115.06") == "城东片区"  # words first
    assert await locate(latitude="39.9", longitude="116.4") is None
    bad = await client.get("/api/areas/locate", params={"latitude": "200", "longitude": "1"}, headers=SERVICE)
    assert bad.status == 422


async def test_the_bot_binds_by_conversation_and_agents_see_the_binding(client, ctx, staff) -> None:
    await _customer(ctx, "3100000077", "李秀英", "朝阳路7号", "城北片区", "13700007777")
    wechat = await service.receive(ctx, "wechat", "openid-li", "绑定户号", to_bot=False)
    web = await service.receive(ctx, "web", "webchat-li", "绑定户号", to_bot=False)
    refused = await client.post("/api/bindings", headers=SERVICE, json={
        "conversation_id": web.conversation_id, "account_number": "3100000077", "proof": "7777"})
    assert refused.status == 422 and "微信" in (await refused.json())["error"]["message"]
    ok = await client.post("/api/bindings", headers=SERVICE, json={
        "conversation_id": wechat.conversation_id, "account_number": "3100000077", "proof": "李秀英"})
    assert ok.status == 200 and (await ok.json())["openid"] == "openid-li"
    mine = await (await client.get("/api/bindings", params={"conversation_id": str(wechat.conversation_id)},
                                   headers=SERVICE)).json()
    assert [b["account_number"] for b in mine["items"]] == ["3100000077"]

    agent = await login(client, "agent1")
    panel = await (await client.get(f"/api/conversations/{wechat.conversation_id}/context", headers=agent)).json()
    assert panel["matched_by"] == "bound" and panel["customer"]["account_number"] == "3100000077"
    assert panel["bound_accounts"] == [{"account_number": "3100000077", "name": "李**", "area": "城北片区"}]
    gone = await client.post("/api/bindings/unbind", headers=SERVICE, json={"conversation_id": wechat.conversation_id})
    assert (await gone.json())["unbound"] == 1


async def test_outages_are_published_extended_and_ended_by_dispatchers_and_bound_residents_hear(
        client, ctx, staff, clock) -> None:
    channel = RecordingChannel()
    ctx.channels["wechat"] = channel
    await _customer(ctx, "3100000088", "王建国", "兴华路8号", "城西片区", "13912345678")
    await service.receive(ctx, "wechat", "openid-bound", "你好", to_bot=False)
    for proof in ("0000", "1111", "2222", "3333", "4444"):
        bad = await client.post("/api/bindings", headers=SERVICE, json={
            "openid": "openid-bound", "account_number": "3100000088", "proof": proof})
        assert bad.status == 422
    locked = await client.post("/api/bindings", headers=SERVICE, json={
        "openid": "openid-bound", "account_number": "3100000088", "proof": "5678"})
    assert locked.status == 429  # five wrong tries: refused for an hour, even with the right digits
    clock.advance(hours=1, minutes=1)
    ok = await client.post("/api/bindings", headers=SERVICE, json={
        "openid": "openid-bound", "account_number": "3100000088", "proof": "5678"})
    assert ok.status == 200 and (await ok.json())["name"] == "王**"
    bound = await (await client.get("/api/bindings", params={"openid": "openid-bound"}, headers=SERVICE)).json()
    assert [b["account_number"] for b in bound["items"]] == ["3100000088"]

    headers = await login(client, "meterman")  # department staff outside the dispatching departments
    start, end = clock(), clock() + dt.timedelta(hours=6)
    body = {"areas": ["城西片区", "城北片区"], "title": "兴华路管道改造", "detail": "更换老旧管道。",
            "planned": True, "starts_at": start.isoformat(), "ends_at": end.isoformat()}
    assert (await client.post("/api/outages", json=body, headers=headers)).status == 403
    headers = await login(client, "crew")
    published = await client.post("/api/outages", json=body, headers=headers)
    outage = await published.json()
    assert published.status == 201 and outage["areas"] == ["城西片区", "城北片区"] and outage["residents_told"] == 1
    assert "停水通知" in channel.sent[-1][1] and channel.sent[-1][0] == "openid-bound"
    extended = await client.patch(f"/api/outages/{outage['id']}", headers=headers,
                                  json={"ends_at": (end + dt.timedelta(hours=2)).isoformat()})
    assert extended.status == 200 and "停水延长" in channel.sent[-1][1]
    ended = await client.post(f"/api/outages/{outage['id']}/end", headers=headers, json={"note": "提前完工"})
    assert ended.status == 200 and "恢复供水" in channel.sent[-1][1]
    north = await (await client.get("/api/outages", params={"area": "城北片区"}, headers=SERVICE)).json()
    assert all(o["title"] != "兴华路管道改造" for o in north["items"])  # ended: no longer current
    trail = (await (await client.get(f"/api/events/outage/{outage['id']}", headers=SERVICE)).json())["items"]
    assert [e["action"] for e in trail] == ["publish", "extend", "end"]
    assert trail[0]["actor"]["name"] == "crew"


async def test_words_that_signal_the_media_raise_an_alert_and_the_tickets_priority(client, ctx, staff) -> None:
    received = await service.receive(ctx, "web", "resident-angry", "水管漏了三天没人管", to_bot=False)
    resp = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "leak", "description": "水管漏了三天",
        "channel": "web", "conversation_id": received.conversation_id})
    number = (await resp.json())["number"]
    await service.receive(ctx, "web", "resident-angry", "再不来修我要找电视台曝光你们", to_bot=False)
    headers = await login(client, "sup")
    alerts = (await (await client.get("/api/alerts", headers=headers)).json())["items"]
    assert len(alerts) == 1 and set(alerts[0]["words"]) == {"电视台", "曝光"} and alerts[0]["ticket"] == number
    ticket = await (await client.get(f"/api/tickets/{number}", headers=SERVICE)).json()
    assert ticket["priority"] == "urgent" and ticket["events"][-1]["action"] == "raise_priority"
    ack = await client.post(f"/api/alerts/{alerts[0]['id']}/acknowledge", headers=headers, json={"note": "已致电"})
    assert ack.status == 200
    assert (await (await client.get("/api/alerts", headers=headers)).json())["items"] == []
    assert (await client.post(f"/api/alerts/{alerts[0]['id']}/acknowledge", headers=headers, json={})).status == 409


async def test_outage_times_without_an_offset_are_the_utilitys_local_time(client, ctx, staff) -> None:
    """A dispatcher's 18:30 is Beijing time whatever the sender's zone; a time with an offset is taken as sent."""
    headers = await login(client, "crew")
    body = {"areas": ["城南片区"], "title": "胜利路阀门检修", "planned": True,
            "starts_at": "2026-09-25T18:30", "ends_at": "2026-09-25T22:00:00"}
    naive = await (await client.post("/api/outages", json=body, headers=headers)).json()
    assert dt.datetime.fromisoformat(naive["starts_at"]) == local(2026, 9, 25, 18, 30)
    assert dt.datetime.fromisoformat(naive["ends_at"]) == local(2026, 9, 25, 22, 0)
    body |= {"title": "长安路阀门检修", "starts_at": "2026-09-25T10:30:00Z", "ends_at": "2026-09-25T22:00:00+08:00"}
    offset = await (await client.post("/api/outages", json=body, headers=headers)).json()
    assert dt.datetime.fromisoformat(offset["starts_at"]) == local(2026, 9, 25, 18, 30)
    assert dt.datetime.fromisoformat(offset["ends_at"]) == local(2026, 9, 25, 22, 0)
    extended = await client.patch(f"/api/outages/{naive['id']}", headers=headers, json={"ends_at": "2026-09-25T23:30"})
    assert dt.datetime.fromisoformat((await extended.json())["ends_at"]) == local(2026, 9, 25, 23, 30)
    zone = await (await client.get("/api/areas", headers=headers)).json()
    assert (zone["timezone"], zone["utc_offset"]) == ("Asia/Shanghai", "+08:00") and "城南片区" in zone["items"]


async def test_an_accounts_area_is_located_before_street_words_and_location(client, ctx, staff) -> None:
    """The bot asks where a 户号 is before offering a repair: the account's supply area, as reports are placed."""
    await _customer(ctx, "3100000099", "李开发", "定州市兴定路1号", "开发区", "13900000099")

    async def locate(**params: str) -> str | None:
        resp = await client.get("/api/areas/locate", params=params, headers=SERVICE)
        assert resp.status == 200
        return (await resp.json())["area"]

    assert await locate(account="3100000099") == "开发区"
    assert await locate(account="3100000099", address="中山东路", latitude="38.51", longitude="115.00") == "开发区"
    assert await locate(account="3199999999", address="中山东路3号") == "城东片区"  # no such account: the words
    assert await locate(account="3199999999") is None


async def test_an_extensions_due_time_without_an_offset_is_the_utilitys_local_time(client, ctx, staff) -> None:
    """The same rule for a ticket's 延期: 17:30 typed is 17:30 Beijing time (the console sends what was typed)."""
    resp = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "leak", "description": "楼道漏水", "channel": "phone",
        "phone": "13900001111"})
    number = (await resp.json())["number"]
    assign = await client.post(f"/api/tickets/{number}/assign", headers=await login(client, "sun.repair"),
                               json={"assignee": "crew"})
    assert assign.status == 200
    asked = await client.post(f"/api/tickets/{number}/request_extension", headers=await login(client, "crew"),
                              json={"note": "需要协调物业", "due_at": "2026-10-09T17:30"})
    assert asked.status == 200, await asked.text()
    assert dt.datetime.fromisoformat((await asked.json())["extension"]["due_at"]) == local(2026, 10, 9, 17, 30)
