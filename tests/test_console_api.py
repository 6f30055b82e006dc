"""What the console stands on: the queue, a ticket drafted from what the bot learned,
linking, allowed actions, voicemail files, and live events across processes."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import create_app
from hotline.context import build_context
from hotline.conversations import service
from hotline.events import NOTIFY_LIMIT, notify_payload
from hotline.rasa.client import parse_reply
from hotline.tickets.escalation import sweep
from models import Call
from tests.conftest import SERVICE, login


async def _waiting(ctx, user: str, text: str, **handoff) -> int:
    """A web-chat conversation the bot handed to a person (no bot configured: it goes to waiting)."""
    received = await service.receive(ctx, "web", user, text, to_bot=False)
    await service.handoff(ctx, received.conversation_id, handoff.pop("reason", "requested"), None, **handoff)
    return received.conversation_id


def test_the_bots_handoff_payload_carries_what_it_learned() -> None:
    reply = parse_reply([{"text": "正在为您转接人工客服"},
                         {"custom": {"handoff": True, "reason": "requested", "category": "repair",
                                     "learned": {"business_type": "leak", "address": "幸福路12号",
                                                 "nested": {"dropped": True}}}}])
    assert reply.handoff and reply.category == "repair"
    assert reply.learned == {"business_type": "leak", "address": "幸福路12号"}


async def test_the_queue_lists_waiting_conversations_oldest_first(client: TestClient, ctx, clock) -> None:
    first = await _waiting(ctx, "resident-aaaa01", "第一位")
    clock.advance(minutes=2)
    second = await _waiting(ctx, "resident-aaaa02", "第二位", category="billing")
    await login(client, "agent1")
    data = await (await client.get("/api/queue")).json()
    assert [c["id"] for c in data["waiting"]] == [first, second]
    assert data["waiting"][1]["bot_intent"] == "billing"
    assert data["waiting"][0]["last_resident_message"]["text"] == "第一位"
    assert data["active"] == []


async def test_agents_see_their_own_active_conversations_supervisors_see_all(client: TestClient, ctx, staff) -> None:
    conv = await _waiting(ctx, "resident-bbbb01", "你好")
    await service.take_over(ctx, conv, staff["sup"])
    await login(client, "agent1")
    assert (await (await client.get("/api/queue")).json())["active"] == []
    await login(client, "zhao.supervisor")
    active = (await (await client.get("/api/queue")).json())["active"]
    assert [(c["id"], c["agent_name"]) for c in active] == [(conv, "sup")]
    await login(client, "crew")
    assert (await client.get("/api/queue")).status == 403


async def test_a_ticket_drafted_from_a_conversation_carries_the_bots_details(client: TestClient, ctx) -> None:
    conv = await _waiting(ctx, "resident-cccc01", "楼下水管漏水了", category="repair", learned={
        "business_type": "leak", "address": "幸福路12号", "account_number": "3100000001",
        "phone": "13800138000", "problem": "楼下水管漏水", "description": "楼下水管漏水了；幸福路12号"})
    headers = await login(client, "agent1")
    draft = await (await client.get(f"/api/conversations/{conv}/ticket_draft")).json()
    assert draft["category"] == "repair" and draft["business_type"] == "leak"
    assert (draft["address"], draft["account_number"], draft["phone"]) == ("幸福路12号", "3100000001", "13800138000")
    assert draft["channel"] == "web"

    body = {k: draft[k] for k in ("category", "business_type", "phone", "address", "description", "channel",
                                  "conversation_id")}  # no customers in this store: the account stays out
    resp = await client.post("/api/tickets", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    tickets = (await (await client.get(f"/api/conversations/{conv}/tickets")).json())["items"]
    assert [t["business_type"] for t in tickets] == ["leak"]
    assert tickets[0]["department"] == "network_repair" and tickets[0]["address"] == "幸福路12号"


async def test_a_draft_without_bot_details_uses_what_the_resident_wrote(client: TestClient, ctx) -> None:
    conv = await _waiting(ctx, "resident-cccc02", "我要投诉", reason="bot_unavailable")
    await service.receive(ctx, "web", "resident-cccc02", "抄表员态度很差", to_bot=False)
    await login(client, "agent1")
    draft = await (await client.get(f"/api/conversations/{conv}/ticket_draft")).json()
    assert draft["category"] is None and draft["business_type"] is None
    assert draft["description"] == "我要投诉；抄表员态度很差"


async def test_an_existing_ticket_can_be_linked_once(client: TestClient, ctx) -> None:
    conv = await _waiting(ctx, "resident-dddd01", "我的报修怎么样了")
    other = await _waiting(ctx, "resident-dddd02", "还有我")
    headers = await login(client, "agent1")
    ticket = await (await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "description": "水表漏水", "channel": "phone"})).json()
    resp = await client.post(f"/api/conversations/{conv}/link_ticket", json={"number": ticket["number"]},
                             headers=headers)
    assert resp.status == 200
    trail = (await resp.json())["events"]
    assert trail[-1]["action"] == "link" and trail[-1]["actor_name"] == "agent1"
    resp = await client.post(f"/api/conversations/{other}/link_ticket", json={"number": ticket["number"]},
                             headers=headers)
    assert resp.status == 409
    resp = await client.post(f"/api/conversations/{conv}/link_ticket", json={"number": "GD20990101-0001"},
                             headers=headers)
    assert resp.status == 404


async def test_a_ticket_says_which_actions_the_signed_in_role_may_take(client: TestClient) -> None:
    ticket = await (await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "leak", "description": "漏水", "channel": "phone"})).json()
    await login(client, "agent1")
    agent_view = await (await client.get(f"/api/tickets/{ticket['number']}")).json()
    assert agent_view["allowed_actions"] == ["assign", "reroute", "comment"]
    await login(client, "crew")
    crew_view = await (await client.get(f"/api/tickets/{ticket['number']}")).json()
    assert crew_view["allowed_actions"] == ["assign", "comment", "request_extension", "return"]
    people = await (await client.get("/api/assignees?department=network_repair")).json()
    assert {p["username"] for p in people["items"]} == {"crew", "sun.repair"}
    assert (await client.get("/api/assignees?department=meter")).status == 404  # not crew's department


async def test_voicemail_is_served_only_from_the_recordings_folder(client: TestClient, ctx) -> None:
    recordings = ctx.config.var_dir / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    (recordings / "call-1.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    secret = ctx.config.var_dir / "secret.wav"
    secret.write_bytes(b"not yours")
    async with ctx.sessions.begin() as session:
        session.add_all([Call(sip_call_id="c1", caller="13800138000", recording_path="recordings/call-1.wav",
                              outcome="voicemail", started_at=ctx.clock()),
                         Call(sip_call_id="c2", caller="13800138001", recording_path="recordings/../secret.wav",
                              outcome="voicemail", started_at=ctx.clock())])
    await login(client, "agent1")
    calls = {c["sip_call_id"]: c for c in (await (await client.get("/api/calls")).json())["items"]}
    resp = await client.get(calls["c1"]["recording_url"])
    assert resp.status == 200 and resp.headers["Content-Type"] == "audio/wav"
    assert (await resp.read()).startswith(b"RIFF")
    assert (await client.get(calls["c2"]["recording_url"])).status == 404
    await login(client, "crew")
    assert (await client.get(calls["c1"]["recording_url"])).status == 403


async def test_the_console_page_forbids_inline_script(client: TestClient) -> None:
    resp = await client.get("/console")
    assert resp.status == 200
    policy = resp.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "console.js" in await resp.text()
    assert (await client.get("/console/static/console.js")).status == 200


def test_an_overlong_event_is_cut_to_fit_a_notify() -> None:
    evt = {"type": "conversation.message", "conversation_id": 7, "message": {"id": 1, "text": "漏" * 5000}}
    payload = notify_payload("me", evt)
    assert len(payload.encode()) <= NOTIFY_LIMIT
    data = json.loads(payload)
    assert data["event"]["truncated"] is True and data["event"]["conversation_id"] == 7
    small = json.loads(notify_payload("me", {"type": "ticket.changed", "ticket": "GD1"}))
    assert small == {"origin": "me", "event": {"type": "ticket.changed", "ticket": "GD1"}}


async def _next(ws, kind: str) -> dict:
    while True:
        msg = await asyncio.wait_for(ws.receive_json(), timeout=5)
        if msg["type"] == kind:
            return msg


async def test_a_signed_out_console_stops_hearing_events(client: TestClient, monkeypatch) -> None:
    from hotline.live import stream
    monkeypatch.setattr(stream, "SESSION_CHECK_SECONDS", 0.2)
    headers = await login(client, "agent1")
    ws = await client.ws_connect("/ws/events")
    assert (await ws.receive_json())["type"] == "hello"
    assert (await client.post("/api/auth/logout", headers=headers)).status == 200
    closed = await asyncio.wait_for(ws.receive(), timeout=5)
    assert closed.type.name == "CLOSE" and ws.close_code == 4401


async def test_another_sites_page_cannot_open_the_event_stream(client: TestClient) -> None:
    await login(client, "agent1")
    resp = await client.get("/ws/events", headers={"Origin": "https://evil.example", "Connection": "Upgrade",
                                                   "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                   "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert resp.status == 403


async def test_escalation_notices_reach_the_supervisors_console_live(client: TestClient, ctx, clock) -> None:
    await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "leak", "description": "漏水", "channel": "phone"})
    await login(client, "sun.repair")
    ws = await client.ws_connect("/ws/events")
    ticket = (await (await client.get("/api/tickets")).json())["items"][0]["number"]
    clock.advance(days=5)
    await sweep(ctx.sessions, ctx.router, clock())
    notice = await _next(ws, "notification")
    assert notice["ticket"] == ticket and ticket in notice["message"]


async def test_events_reach_consoles_on_another_process(db_url: str, config, clock, staff, tmp_path: Path) -> None:
    """Two service processes on one PostgreSQL: a change on B reaches a console on A (LISTEN/NOTIFY)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("cross-process events are a PostgreSQL deployment; SQLite is one process")
    other_cfg = type(config)()
    other_cfg.database.url, other_cfg.api.service_token = config.database.url, config.api.service_token
    other_cfg.service.var_dir = str(tmp_path / "other")
    other_cfg.escalation.enabled = other_cfg.bot.enabled = False
    a_ctx, b_ctx = build_context(config, clock), build_context(other_cfg, clock)
    assert a_ctx.origin != b_ctx.origin
    async with TestClient(TestServer(create_app(a_ctx))) as a, TestClient(TestServer(create_app(b_ctx))) as b:
        await login(a, "agent1")
        ws = await a.ws_connect("/ws/events")
        assert (await ws.receive_json())["type"] == "hello"
        resident = await b.ws_connect("/ws/chat?client=resident-eeee01")
        await resident.send_json({"type": "message", "id": "m1", "text": "B进程收到的消息"})
        msg = await _next(ws, "conversation.message")
        assert msg["message"]["text"] == "B进程收到的消息"
        waiting = await _next(ws, "conversation.waiting")  # no bot in B: a person must answer
        assert waiting["conversation_id"] == msg["conversation_id"]
        # A's own change is heard once, not twice (its NOTIFY comes back to it and is skipped).
        headers = await login(a, "agent1")
        assert (await a.post(f"/api/conversations/{msg['conversation_id']}/take_over", headers=headers)).status == 200
        assert (await _next(ws, "conversation.taken"))["agent_name"] == "agent1"
        with pytest.raises(asyncio.TimeoutError):
            await _next_within(ws, "conversation.taken", 0.7)


async def _next_within(ws, kind: str, seconds: float) -> dict:
    async with asyncio.timeout(seconds):
        return await _next(ws, kind)
