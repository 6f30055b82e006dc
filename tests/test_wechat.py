"""WeChat official account: verification, the three modes, message types, bad input, retries, the 5 s rule,
freshness (timestamp window, nonces used once), the access log, long texts.

Pushes come from tests/wechat_client.py (the wire format, independent of
wechatpy); outbound calls go to a fake WeChat API on 127.0.0.1 that records
them and can answer with errors and expired tokens.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from hotline.api.middleware import RedactingAccessLogger
from hotline.app import create_app
from hotline.channels.wechat.replay import ReplayGuard
from hotline.channels.wechat.views import TRUNCATED
from hotline.config import ConfigError, WechatConfig
from hotline.rasa.client import RasaClient
from models import Conversation, Message
from tests import wechat_client as wx
from tests.test_conversations import FakeRasa


class FakeWeChat:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.templates: list[dict[str, Any]] = []
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

    async def template(self, request: web.Request) -> web.Response:
        self.templates.append({"token": request.query["access_token"], **await request.json()})
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": len(self.templates)})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self.token)
        app.router.add_post("/cgi-bin/message/custom/send", self.send)
        app.router.add_post("/cgi-bin/message/template/send", self.template)
        return app


@pytest.fixture
def wechat_mode() -> str:
    """[wechat] mode of the app under test; compatible takes every format the tests push. Override per test."""
    return "compatible"


@pytest_asyncio.fixture
async def wechat(ctx, staff, wechat_mode) -> AsyncIterator[tuple[TestClient, FakeRasa, FakeWeChat]]:
    fake_rasa, fake_wx = FakeRasa(), FakeWeChat()
    rasa_app = web.Application()
    rasa_app.router.add_post("/webhooks/rest/webhook", fake_rasa.webhook)
    async with TestServer(rasa_app) as rasa_server, TestServer(fake_wx.app()) as wx_server:
        ctx.bot = RasaClient(str(rasa_server.make_url("/")), timeout=10.0)
        ctx.config.wechat.token, ctx.config.wechat.app_id = wx.TOKEN, wx.APP_ID
        ctx.config.wechat.app_secret, ctx.config.wechat.encoding_aes_key = "secret", wx.AES_KEY
        ctx.config.wechat.api_base_url = str(wx_server.make_url("")).rstrip("/")
        ctx.config.wechat.mode = wechat_mode
        server = TestServer(create_app(ctx))
        await server.start_server(access_log_class=RedactingAccessLogger)  # the access log run_hotline.py uses
        async with TestClient(server) as client:
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



async def _stored_resident_texts(ctx) -> list[str]:
    return [text for sender, _, text in await _messages(ctx) if sender == "resident"]


@pytest.mark.parametrize("wechat_mode", ["safe", ""])  # empty: safe, because an EncodingAESKey is set
async def test_safe_mode_refuses_plaintext_pushes(wechat, ctx, wechat_mode) -> None:
    client, rasa, _ = wechat
    resp = await _push(client, wx.message("text", "openid-20", 20001, Content="明文"), "plain")
    assert resp.status == 403
    assert await _messages(ctx) == [] and rasa.received == []
    for number, mode in [(20002, "aes"), (20003, "compatible")]:
        resp = await _push(client, wx.message("text", "openid-20", number, Content=mode), mode)
        assert resp.status == 200
        assert "<Encrypt>" in await resp.text() and wx.reply_text(await resp.text()) == f"收到：{mode}"
    assert await _stored_resident_texts(ctx) == ["aes", "compatible"]


async def test_compatible_mode_accepts_both_and_answers_each_as_it_came(wechat, ctx) -> None:
    client, _, _ = wechat
    plain = await _push(client, wx.message("text", "openid-21", 21001, Content="明文"), "plain")
    assert plain.status == 200
    assert "<Encrypt>" not in await plain.text() and wx.reply_text(await plain.text()) == "收到：明文"
    encrypted = await _push(client, wx.message("text", "openid-21", 21002, Content="密文"), "aes")
    assert encrypted.status == 200
    assert "<Encrypt>" in await encrypted.text() and wx.reply_text(await encrypted.text()) == "收到：密文"


@pytest.mark.parametrize("wechat_mode", ["plaintext"])
async def test_plaintext_mode_refuses_encrypted_pushes(wechat, ctx, wechat_mode) -> None:
    client, _, _ = wechat
    assert (await _push(client, wx.message("text", "openid-22", 22001, Content="密文"), "aes")).status == 403
    assert (await _push(client, wx.message("text", "openid-22", 22002, Content="明文"), "plain")).status == 200
    assert await _stored_resident_texts(ctx) == ["明文"]


@pytest.mark.parametrize("mode", ["plain", "aes"])
async def test_stale_and_future_timestamps_are_403(wechat, ctx, mode) -> None:
    client, _, _ = wechat
    now = int(time.time())
    # 30 s beyond the 300 s window either way: a slow machine must not bring them back inside it
    for number, timestamp in [(23001, now - 30 * 86400), (23002, now - 330), (23003, now + 330)]:
        query, body = wx.push(wx.message("text", "openid-23", number, Content="旧消息"), mode, timestamp=timestamp)
        assert (await client.post("/wechat", params=query, data=body.encode())).status == 403, timestamp
    query = wx.signed_query("plain", timestamp=now - 330)
    assert (await client.get("/wechat", params={**query, "echostr": "e"})).status == 403
    assert await _messages(ctx) == []
    # Inside the window either way is fine (clocks differ a little).
    for number, timestamp in [(23004, now - 250), (23005, now + 250)]:
        query, body = wx.push(wx.message("text", "openid-23", number, Content="新消息"), mode, timestamp=timestamp)
        assert (await client.post("/wechat", params=query, data=body.encode())).status == 200


@pytest.mark.parametrize("mode", ["plain", "aes"])
async def test_a_replayed_nonce_is_403_even_with_another_body(wechat, ctx, mode) -> None:
    client, rasa, _ = wechat
    query, body = wx.push(wx.message("text", "openid-24", 24001, Content="第一条"), mode)
    assert (await client.post("/wechat", params=query, data=body.encode())).status == 200
    # The very same push again, and the captured query with a body of the attacker's choosing.
    assert (await client.post("/wechat", params=query, data=body.encode())).status == 403
    _, other = wx.push(wx.message("text", "openid-24", 24002, Content="伪造的"), mode)
    assert (await client.post("/wechat", params=query, data=other.encode())).status == 403
    assert await _stored_resident_texts(ctx) == ["第一条"] and len(rasa.received) == 1


async def test_a_forged_push_does_not_use_up_its_nonce(wechat, ctx) -> None:
    client, _, _ = wechat
    query, body = wx.push(wx.message("text", "openid-25", 25001, Content="真的"), "aes")
    forged = {**query, "msg_signature": "0" * 40}
    assert (await client.post("/wechat", params=forged, data=body.encode())).status == 403
    assert (await client.post("/wechat", params=query, data=body.encode())).status == 200


async def test_the_access_log_holds_no_signature_nonce_or_body(wechat, ctx, caplog) -> None:
    client, _, _ = wechat
    caplog.set_level(logging.INFO, logger="aiohttp.access")
    query, body = wx.push(wx.message("text", "openid-26", 26001, Content="我的地址是幸福路8号"), "aes")
    assert (await client.post("/wechat", params=query, data=body.encode())).status == 200
    plain_query, plain_body = wx.push(wx.message("text", "openid-26", 26002, Content="明文地址"), "plain")
    assert (await client.post("/wechat", params=plain_query, data=plain_body.encode())).status == 200
    verify = {**wx.signed_query("plain"), "echostr": "echo-secret-123"}
    assert (await client.get("/wechat", params=verify)).status == 200
    access = [r for r in caplog.records if r.name == "aiohttp.access"]
    lines = [r.getMessage() for r in access]
    assert len([line for line in lines if "/wechat" in line]) == 3, lines
    # The message and the structured fields (extra=...) a JSON log handler would write.
    logged = "\n".join(lines + [f"{r.first_request_line} {r.request_header}" for r in access])
    for secret in [query["signature"], query["msg_signature"], query["nonce"], query["timestamp"],
                   plain_query["signature"], plain_query["nonce"], verify["signature"], verify["echostr"],
                   "幸福路", "明文地址", "openid-26"]:
        assert secret not in logged, secret
    assert "POST /wechat?" in logged and "encrypt_type=-" in logged  # names kept, every value dropped


def test_the_service_runs_with_the_redacting_access_log(monkeypatch, config) -> None:
    """run_hotline.py serve hands the redacting access logger to aiohttp."""
    import aiohttp.web

    import run_hotline
    seen: dict[str, Any] = {}
    monkeypatch.setattr(aiohttp.web, "run_app", lambda app, **kw: seen.update(kw))
    run_hotline._serve(config)
    assert seen["access_log_class"] is RedactingAccessLogger


async def test_a_long_text_is_stored_cut_with_a_marker(wechat, ctx) -> None:
    client, rasa, _ = wechat
    text = "漏" * 25_000
    resp = await _push(client, wx.message("text", "openid-27", 27001, Content=text), "aes")
    assert resp.status == 200
    async with ctx.readers() as session:
        stored = (await session.execute(select(Message).where(Message.sender_kind == "resident"))).scalar_one()
    assert len(stored.text) == 20_000 and stored.text.endswith(TRUNCATED)
    assert stored.text.startswith("漏" * 19_000)
    assert stored.payload == {"truncated_from_chars": 25_000}
    assert len(rasa.received[0]["message"]) <= 20_000
    short = await _push(client, wx.message("text", "openid-27", 27002, Content="短消息"), "aes")
    assert short.status == 200 and (await _stored_resident_texts(ctx))[-1] == "短消息"


def test_the_mode_is_checked_at_start(ctx) -> None:
    cfg = ctx.config.wechat
    cfg.token = wx.TOKEN
    for mode, key, error in [("secure", wx.AES_KEY, "expected one of plaintext, compatible, safe"),
                             ("safe", "", "needs encoding_aes_key"), ("compatible", "", "needs encoding_aes_key"),
                             ("safe", "short", "expected 43 characters")]:
        cfg.mode, cfg.encoding_aes_key = mode, key
        with pytest.raises(ConfigError, match=error):
            create_app(ctx)
    assert WechatConfig(encoding_aes_key=wx.AES_KEY).effective_mode() == "safe"
    assert WechatConfig().effective_mode() == "plaintext"
    assert WechatConfig(mode="Compatible", encoding_aes_key=wx.AES_KEY).effective_mode() == "compatible"


def test_replay_guard_forgets_in_time_and_stays_bounded() -> None:
    clock = [1_000_000.0]
    guard = ReplayGuard(300, max_nonces=3, now=lambda: clock[0])
    assert guard.fresh("abc") is None and guard.fresh(str(999_699)) is None and guard.fresh(str(1_000_301)) is None
    t = guard.fresh(str(1_000_000))
    assert t == 1_000_000 and guard.first_use(t, "a") and not guard.first_use(t, "a")
    assert not guard.first_use(t, "")
    clock[0] += 601  # no timestamp that was fresh with "a" is fresh any more: "a" can go
    assert guard.first_use(1_000_601, "b") and len(guard) == 1
    assert guard.first_use(1_000_590, "c") and guard.first_use(1_000_601, "d")
    assert guard.first_use(1_000_601, "e") and len(guard) == 3  # "b" dropped to stay within 3 ...
    assert guard.fresh(str(1_000_601)) is None  # ... so its timestamp (and older) is refused from now on
    assert guard.fresh(str(1_000_602)) == 1_000_602
