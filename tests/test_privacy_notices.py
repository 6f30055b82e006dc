"""Residents are told before their data is processed (PIPL art. 17): the IVR welcome says calls may be recorded,
the WeChat subscribe reply and the web chat link /privacy, and /privacy says what, why, how long (the configured
retention), who sees it and how to ask for a copy or erasure, to anyone, without signing in."""
from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from hotline.app import create_app
from hotline.config import ROOT
from hotline.ivr.flows import load_flow
from hotline.public.privacy import load_notice, render, retention_words
from tests import wechat_client as wx
from tests.test_wechat import _push, wechat, wechat_mode  # noqa: F401  (fixtures)


async def test_the_privacy_page_is_public_and_states_the_configured_retention(ctx, staff) -> None:
    retention = getattr(ctx.config, "retention", None)
    if retention is not None:
        retention.recordings_days, retention.conversations_days = 45, 0
    async with TestClient(TestServer(create_app(ctx))) as client:
        resp = await client.get("/privacy")
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    assert "个人信息保护说明" in page
    for words in ("来电号码", "openid", "会话标识", "通话可能会被录音", "查阅记录", "副本", "删除", "96655",
                  "15个工作日"):
        assert words in page, words
    if retention is not None:
        assert "电话留言录音：保存45天" in page
        assert "在线客服和微信会话的文字：长期保存，您可以申请删除" in page
    assert "<script" not in page and "{" not in page  # every placeholder filled, nothing runs
    assert "default-src 'none'" in resp.headers["Content-Security-Policy"]


def test_every_placeholder_of_the_notice_is_a_retention_kind() -> None:
    notice = load_notice(ROOT / "config/privacy.yml")

    class Retention:
        conversations_days, recordings_days, call_numbers_days, tracker_days = 180, 90, 365, 30
        nlu_feedback_days, read_audit_days, closed_tickets_days = 180, 1095, 1095

    class Config:
        retention = Retention()

    page = render(notice, retention_words(Config())).decode()
    assert "保存90天" in page and "保存1095天" in page and "保存30天" in page


async def test_the_web_chat_page_links_the_privacy_notice(client) -> None:
    page = await (await client.get("/chat")).text()
    assert 'href="/privacy"' in page and "个人信息保护说明" in page


async def test_the_wechat_subscribe_reply_links_the_privacy_notice(wechat, ctx) -> None:
    client, _, _ = wechat
    resp = await _push(client, wx.message("event", "openid-privacy", Event="subscribe"))
    reply = wx.reply_text(await resp.text())
    assert "感谢关注" in reply and f"{ctx.config.public_url}/privacy" in reply and "个人信息" in reply


def test_the_ivr_welcome_says_calls_may_be_recorded() -> None:
    flow = load_flow(ROOT / "ivr_flows/main.yml")
    assert "通话可能会被录音" in flow.prompts["welcome"]
