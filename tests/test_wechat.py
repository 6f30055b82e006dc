"""WeChat official account: verification, the three modes, message types, bad input, retries, the 5 s rule.

Pushes come from tests/wechat_client.py (the wire format, independent of
wechatpy); outbound calls go to a fake WeChat API on 127.0.0.1 that records
them and can answer with errors and expired tokens.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from hotline.app import create_app
from hotline.bot.client import RasaClient
from models import Conversation, Message
from tests import wechat_client as wx
from tests.test_conversations import FakeRasa


class FakeWeChat:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.tokens_issued = 0
        self.fail_next: list[int] = []

    async def token(self, request: web.Request) -> web.Response:
        assert request.query["appid"] == wx.APP_ID
        self.tokens_issued += 1
        return web.json_response({"access_token": f"TOKEN{self.tokens_issued}", "expires_in": 7200})

    async def send(self, request: web.Request) -> web.Response:
        body = await request.json()
        if self.fail_next:
            code = self.fail_next.pop(0)
            return web.json_response({"errcode": code, "errmsg": "fake error"})
        self.sent.append({"token": request.query["access_token"], **body})
        return web.json_response({"errcode": 0, "errmsg": "ok"})


@pytest_asyncio.fixture
async def wechat(ctx, staff) -> AsyncIterator[tuple[TestClient, FakeRasa, FakeWeChat]]:
    fake_rasa, fake_wx = FakeRasa(), FakeWeChat()
    rasa_app, wx_app = web.Application(), web.Application()
    rasa_app.router.add_post("/webhooks/rest/webhook", fake_rasa.webhook)
    wx_app.router.add_get("/cgi-bin/token", fake_wx.token)
    wx_app.router.add_post("/cgi-bin/message/custom/send", fake_wx.send)
    async with TestServer(rasa_app) as rasa_server, TestServer(wx_app) as wx_server:
        ctx.bot = RasaClient(str(rasa_server.make_url("/")), timeout=10.0)
        ctx.config.wechat.token, ctx.config.wechat.app_id = wx.TOKEN, wx.APP_ID
        ctx.config.wechat.app_secret, ctx.config.wechat.encoding_aes_key = "secret", wx.AES_KEY
        ctx.config.wechat.api_base_url = str(wx_server.make_url("")).rstrip("/")
        async with TestClient(TestServer(create_app(ctx))) as client:
            yield client, fake_rasa, fake_wx


async def _push(client: TestClient, xml: str, mode: str = "plain", **kw: Any):
    query, body = wx.push(xml, mode, **kw)
    return await client.post("/wechat", params=query, data=body.encode())


async def _messages(ctx) -> list[tuple[str, str, str]]:
    async with ctx.readers() as session:
        rows = (await session.execute(select(Message.sender_kind, Message.kind, Message.text)
                                      .order_by(Message.id))).all()
    return [tuple(r) for r in rows]


async def test_server_verification(wechat) -> None:
    client, _, _ = wechat
    query = wx.signed_query("plain")
    resp = await client.get("/wechat", params={**query, "echostr": "hello123"})
    assert resp.status == 200 and await resp.text() == "hello123"
    forged = await client.get("/wechat", params={**query, "signature": "0" * 40, "echostr": "x"})
    assert forged.status == 403


@pytest.mark.parametrize("mode", ["plain", "compatible", "aes"])
async def test_each_mode_gets_the_bot_reply_passively(wechat, ctx, mode) -> None:
    client, rasa, _ = wechat
    resp = await _push(client, wx.message("text", "openid-1", 1001, Content="家里没水了"), mode)
    assert resp.status == 200
    assert wx.reply_text(await resp.text()) == "收到：家里没水了"
    assert rasa.received[0]["metadata"]["channel"] == "wechat"
    assert await _messages(ctx) == [("resident", "text", "家里没水了"), ("bot", "text", "收到：家里没水了")]


@pytest.mark.parametrize("forgery", ["msg_signature", "ciphertext", "appid"])
async def test_forged_safe_mode_pushes_are_403(wechat, ctx, forgery) -> None:
    client, _, _ = wechat
    query, body = wx.push(wx.message("text", "openid-2", 2001, Content="hi"), "aes")
    if forgery == "msg_signature":
        query["msg_signature"] = "f" * 40
    elif forgery == "ciphertext":
        body = body.replace("<Encrypt><![CDATA[", "<Encrypt><![CDATA[AAAA")
    else:
        wx_app_id, wx.APP_ID = wx.APP_ID, "wxsomebodyelse00"
        try:
            query, body = wx.push(wx.message("text", "openid-2", 2001, Content="hi"), "aes")
        finally:
            wx.APP_ID = wx_app_id
    resp = await client.post("/wechat", params=query, data=body.encode())
    assert resp.status == 403
    assert await _messages(ctx) == []


async def test_a_forged_plaintext_signature_is_403(wechat, ctx) -> None:
    client, _, _ = wechat
    query, body = wx.push(wx.message("text", "openid-3", 3001, Content="hi"), "plain", token="not-our-token")
    assert (await client.post("/wechat", params=query, data=body.encode())).status == 403
    assert await _messages(ctx) == []


@pytest.mark.parametrize("body", [
    "not xml at all",
    "<xml><ToUserName>gh</ToUserName></xml>",
    '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>',
    '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><xml><Content>&c;</Content></xml>',
])
async def test_garbage_xxe_and_entity_bombs_are_400(wechat, ctx, body) -> None:
    client, _, _ = wechat
    resp = await client.post("/wechat", params=wx.signed_query("plain"), data=body.encode())
    assert resp.status == 400
    assert (await client.get("/healthz")).status == 200
    assert await _messages(ctx) == []


async def test_three_retries_make_one_message_and_one_bot_call(wechat, ctx) -> None:
    client, rasa, _ = wechat
    xml = wx.message("text", "openid-4", 4001, Content="水管漏水")
    for _ in range(3):
        assert (await _push(client, xml, "aes")).status == 200
    assert len(rasa.received) == 1
    assert [m for m in await _messages(ctx) if m[0] == "resident"] == [("resident", "text", "水管漏水")]


async def test_a_slow_bot_still_answers_in_time_and_the_reply_comes_by_the_api(wechat, ctx) -> None:
    client, rasa, wxapi = wechat
    rasa.mode = "slow"  # the fake Rasa takes 5 s; WeChat allows 5 s for our answer
    loop = asyncio.get_running_loop()
    began = loop.time()
    resp = await _push(client, wx.message("text", "openid-5", 5001, Content="查水费"), "aes")
    assert loop.time() - began < 4.8
    assert await resp.text() == "success"
    for _ in range(100):
        if wxapi.sent:
            break
        await asyncio.sleep(0.1)
    assert wxapi.sent and wxapi.sent[0]["touser"] == "openid-5" and wxapi.sent[0]["text"]["content"] == "收到：查水费"


async def test_message_types(wechat, ctx) -> None:
    client, rasa, _ = wechat
    resp = await _push(client, wx.message("voice", "openid-6", 6001, MediaId="m1", Format="amr",
                                          Recognition="家里水压很低"))
    assert wx.reply_text(await resp.text()) == "收到：家里水压很低"
    resp = await _push(client, wx.message("voice", "openid-6", 6002, MediaId="m2", Format="amr", Recognition=""))
    assert "文字" in wx.reply_text(await resp.text())
    resp = await _push(client, wx.message("image", "openid-6", 6003, PicUrl="http://127.0.0.1/p.jpg", MediaId="m3"))
    assert "图片已收到" in wx.reply_text(await resp.text())
    resp = await _push(client, wx.message("location", "openid-6", 6004, Location_X="38.51", Location_Y="114.99",
                                          Scale="15", Label="定州市建设路16号"))
    assert wx.reply_text(await resp.text()).startswith("收到：我的位置")
    assert rasa.received[-1]["metadata"]["address"] == "定州市建设路16号"
    resp = await _push(client, wx.message("event", "openid-7", Event="subscribe"))
    assert "感谢关注" in wx.reply_text(await resp.text())
    resp = await _push(client, wx.message("event", "openid-7", Event="CLICK", EventKey="BILLING"))
    assert wx.reply_text(await resp.text()) == "收到：查询水费"
    resp = await _push(client, wx.message("event", "openid-8", Event="unsubscribe"))
    assert await resp.text() == "success"
    kinds = [(s, k) for s, k, _ in await _messages(ctx) if s == "resident"]
    assert kinds == [("resident", "voice"), ("resident", "voice"), ("resident", "image"), ("resident", "location"),
                     ("resident", "event"), ("resident", "event"), ("resident", "event")]
    async with ctx.readers() as session:
        voice = (await session.execute(select(Message).where(Message.kind == "voice"))).scalars().all()
    assert voice[1].payload["media_id"] == "m2"


async def test_agent_replies_use_the_api_with_token_refresh_and_show_window_errors(wechat, ctx, staff) -> None:
    client, rasa, wxapi = wechat
    rasa.mode = "handoff"
    await _push(client, wx.message("text", "openid-9", 9001, Content="转人工"))
    async with ctx.readers() as session:
        conv = (await session.execute(select(Conversation))).scalars().first()
    assert conv.status == "waiting"
    from tests.conftest import login
    headers = await login(client, "agent1")
    await client.post(f"/api/conversations/{conv.id}/take_over", headers=headers)
    assert wxapi.sent[-1]["text"]["content"].startswith("人工客服")
    wxapi.fail_next = [40001]  # an invalid token: fetch a new one and retry once
    resp = await client.post(f"/api/conversations/{conv.id}/reply", json={"text": "您好"}, headers=headers)
    assert (await resp.json())["delivery_status"] == "delivered"
    assert wxapi.sent[-1]["token"] == "TOKEN2" and wxapi.tokens_issued == 2
    wxapi.fail_next = [45015]  # outside the 48-hour window
    resp = await client.post(f"/api/conversations/{conv.id}/reply", json={"text": "还在吗"}, headers=headers)
    data = await resp.json()
    assert data["delivery_status"] == "failed" and "48小时" in data["delivery_error"]


async def test_photos_go_with_the_ticket(wechat, ctx) -> None:
    client, _, _ = wechat
    await _push(client, wx.message("image", "openid-10", 10001, PicUrl="http://127.0.0.1/leak1.jpg", MediaId="p1"))
    async with ctx.readers() as session:
        conv = (await session.execute(select(Conversation))).scalars().first()
    from tests.conftest import SERVICE
    created = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "leak", "description": "楼道漏水，见照片", "channel": "wechat",
        "conversation_id": conv.id})
    number = (await created.json())["number"]
    await _push(client, wx.message("image", "openid-10", 10002, PicUrl="http://127.0.0.1/leak2.jpg", MediaId="p2"))
    ticket = await (await client.get(f"/api/tickets/{number}", headers=SERVICE)).json()
    assert [(a["kind"], a["uri"], a["media_id"]) for a in ticket["attachments"]] == [
        ("image", "http://127.0.0.1/leak1.jpg", "p1"), ("image", "http://127.0.0.1/leak2.jpg", "p2")]
