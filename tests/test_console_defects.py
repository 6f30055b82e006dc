"""Defects agents and supervisors found in the console, each as they would notice it: a reassignment both
agents hear of, field errors named in Chinese, a context panel that keeps one resident's account apart
from another matter in the same conversation and says 户号未核实 until the resident proved the account,
agents' own canned replies, and the demo's canned replies."""
from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from hotline.conversations import service
from hotline.demo.seed import seed_demo
from models import CannedReply, Customer, ResidentVerification
from tests.conftest import login
from tests.test_console_shift import ACCOUNT, PHONE, _resident, _ticket, _waiting, channel  # noqa: F401

ELSEWHERE_PHONE = "13800009999"


async def test_both_agents_hear_of_a_reassignment(client: TestClient, ctx, staff, channel) -> None:
    heard: list[dict[str, Any]] = []
    ctx.live.subscribe(heard.append)
    conv = await _waiting(ctx, "resident-re-1", "我要投诉")
    await service.take_over(ctx, conv, staff["agent1"])
    headers = await login(client, "zhao.supervisor")
    assert (await client.post(f"/api/conversations/{conv}/reassign", json={"agent": "sup"},
                              headers=headers)).status == 200
    notices = [e for e in heard if e["type"] == "notification"]
    assert {(tuple(e["staff_ids"]), e["message"]) for e in notices} == {
        ((staff["agent1"].id,), f"zhao.supervisor已将您接待的会话 #{conv} 转给sup"),
        ((staff["sup"].id,), f"zhao.supervisor将会话 #{conv} 转给您接待")}
    await login(client, "agent1")
    kept = (await (await client.get("/api/notifications")).json())["items"]
    assert [(n["kind"], n["message"]) for n in kept] == [
        ("conversation_reassigned_away", f"zhao.supervisor已将您接待的会话 #{conv} 转给sup")]
    await login(client, "sup")
    kept = (await (await client.get("/api/notifications")).json())["items"]
    assert [n["kind"] for n in kept] == ["conversation_reassigned_to"]
    await login(client, "zhao.supervisor")  # who did it is told nothing
    assert (await (await client.get("/api/notifications")).json())["items"] == []


async def test_field_errors_name_the_field_in_chinese(client: TestClient) -> None:
    sup = await login(client, "zhao.supervisor")
    bad = await client.post("/api/canned_replies", json={"shortcut": "has space", "title": "欠费", "text": "x"},
                            headers=sup)
    details = (await bad.json())["error"]["details"]
    assert [(d["field"], d["label"]) for d in details] == [("shortcut", "快捷键")]
    bad = await client.post("/api/tickets", json={"category": "repair", "channel": "web"}, headers=sup)
    assert {d["label"] for d in (await bad.json())["error"]["details"]} == {"问题描述"}


async def test_the_context_panel_keeps_another_matter_apart_and_says_whether_the_account_is_verified(
        client: TestClient, ctx, channel) -> None:
    await _resident(ctx)
    # The resident's account is known; in the same chat they report a leak at another address, from another phone.
    conv = await _waiting(ctx, "resident-mix-1", "我家漏水", learned={"account_number": ACCOUNT,
                                                                      "phone": ELSEWHERE_PHONE})
    own = await _ticket(ctx, account_number=ACCOUNT, phone=PHONE)
    elsewhere = await _ticket(ctx, phone=ELSEWHERE_PHONE, address="建设路8号", conversation_id=conv)
    await login(client, "agent1")
    data = await (await client.get(f"/api/conversations/{conv}/context")).json()
    assert data["customer"]["phones"] == [PHONE]  # the account's registered phones only
    assert [t["number"] for t in data["open_tickets"]] == [own]
    assert [t["number"] for t in data["other_tickets"]] == [elsewhere]  # 本会话的其他工单
    assert data["verified_by"] is None  # the bot matched an account; nobody proved it is theirs: 户号未核实
    async with ctx.sessions.begin() as session:
        customer_id = (await session.execute(select(Customer.id).where(Customer.account_number == ACCOUNT))
                       ).scalar_one()
        session.add(ResidentVerification(conversation_id=conv, customer_id=customer_id, method="phone_digits",
                                         verified_at=ctx.clock()))
    data = await (await client.get(f"/api/conversations/{conv}/context")).json()
    assert data["verified_by"] == "phone_digits"  # now: 智能客服已核实户号
    by_phone = await (await client.get(f"/api/residents/context?phone={ELSEWHERE_PHONE}")).json()
    assert by_phone["customer"] is None and [t["number"] for t in by_phone["open_tickets"]] == [elsewhere]


async def test_agents_keep_their_own_canned_replies_beside_the_shared_ones(client: TestClient) -> None:
    sup = await login(client, "zhao.supervisor")
    shared = await (await client.post("/api/canned_replies", json={
        "shortcut": "nihao", "title": "问候", "text": "您好"}, headers=sup)).json()
    assert shared["personal"] is False
    agent1 = await login(client, "agent1")
    mine = await client.post("/api/canned_replies", json={"shortcut": "wode", "title": "我的问候",
                                                           "text": "{姓名}您好，我是{坐席}"}, headers=agent1)
    assert mine.status == 201
    mine_id = (await mine.json())["id"]
    listed = (await (await client.get("/api/canned_replies")).json())["items"]
    assert [(c["shortcut"], c["personal"]) for c in listed] == [("nihao", False), ("wode", True)]
    changed = await client.put(f"/api/canned_replies/{shared['id']}", json={
        "shortcut": "nihao", "title": "改", "text": "改"}, headers=agent1)
    assert changed.status == 403  # the shared ones are the supervisors'
    other = await login(client, "sup")  # another agent (a supervisor serves too)
    assert [c["shortcut"] for c in (await (await client.get("/api/canned_replies")).json())["items"]] == ["nihao"]
    assert (await client.delete(f"/api/canned_replies/{mine_id}", headers=other)).status == 404
    agent1 = await login(client, "agent1")
    assert (await client.delete(f"/api/canned_replies/{mine_id}", headers=agent1)).status == 200


async def test_the_demo_starts_with_canned_replies_for_a_water_utility(ctx) -> None:
    await seed_demo(ctx, accounts=6)
    async with ctx.readers() as session:
        replies = {c.shortcut: c for c in (await session.execute(select(CannedReply))).scalars()}
    assert {"nihao", "qianfei", "tingshui", "baoxiu"} <= set(replies)
    assert all(c.owner_id is None for c in replies.values())  # shared
    assert "{工单号}" in replies["baoxiu"].text
