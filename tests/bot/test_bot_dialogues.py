"""The bot end to end: run_hotline.py starts Rasa and the action server, which use the real API.

One service process (SQLite, demo accounts) for the whole module; residents'
conversations go to Rasa's REST channel exactly as the channels send them.
"""
from __future__ import annotations

import json
import signal
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from hotline.rasa.client import parse_reply
from hotline.config import ROOT
from tests.service_process import ServiceProcess

MODEL = ROOT / "bot" / "models" / "hotline.tar.gz"
TOKEN = "bot-test-token"
RASA_TOKEN = "bot-test-rasa-token"  # Rasa's API and REST channel refuse requests without it
pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="no trained model: run scripts/setup.sh")


class Stack(ServiceProcess):
    def say(self, sender: str, text: str, **metadata: Any):
        """Talk to Rasa's REST channel directly, as the channels do."""
        body = json.dumps({"sender": sender, "message": text,
                           "metadata": {"channel": "wechat", **metadata}}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.rasa}/webhooks/rest/webhook?token={RASA_TOKEN}",
                                     data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            reply = parse_reply(json.load(resp))
        reply.text = "\n".join(reply.texts)  # type: ignore[attr-defined]
        return reply


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("bot-stack"), TOKEN, bot=True,
                  env={"HOTLINE_BOT_RASA_TOKEN": RASA_TOKEN}).start()
    try:
        yield stack
    finally:
        stack.stop()


def _ticket_number(text: str) -> str:
    import re
    match = re.search(r"GD\d{8}-\d{4,}", text)
    assert match, text
    return match.group(0)


def test_health_reports_the_bot_up(stack: Stack) -> None:
    bot = stack.api("/healthz")["components"]["bot"]
    assert bot["up"] is True and bot["actions"] is True


def test_burst_main_report_becomes_an_urgent_ticket(stack: Stack) -> None:
    first = stack.say("r1", "路边水管爆了，水哗哗往外冒，路都淹了")
    assert "地址" in first.text
    assert "电话" in stack.say("r1", "中山东路幸福家园3号楼门口").text
    done = stack.say("r1", "13812345678")
    assert "紧急" in done.text and "30分钟" in done.text
    ticket = stack.api(f"/api/tickets/{_ticket_number(done.text)}")
    assert ticket["business_type"] == "burst_main" and ticket["priority"] == "urgent"
    assert ticket["channel"] == "wechat" and ticket["contact_phone"] == "13812345678"
    assert ticket["address"] == "中山东路幸福家园3号楼门口"
    assert "爆" in ticket["description"]


def test_repair_with_an_account_number_uses_the_account_address(stack: Stack) -> None:
    stack.say("r2", "家里水表不走了")
    stack.say("r2", "我的户号是3100000007")
    done = stack.say("r2", "电话13900001111")
    ticket = stack.api(f"/api/tickets/{_ticket_number(done.text)}")
    assert ticket["account_number"] == "3100000007" and ticket["business_type"] == "meter_fault"
    assert ticket["address"].startswith("定州市")
    assert ticket["department"] == "meter"


def test_a_wechat_location_fills_the_address(stack: Stack) -> None:
    location = {"address": "定州市建设路16号", "latitude": 38.516, "longitude": 114.99}
    asked = stack.say("l1", "楼下水管漏水了", **location)
    assert "电话" in asked.text and "地址" not in asked.text
    done = stack.say("l1", "13512345678", **location)
    ticket = stack.api(f"/api/tickets/{_ticket_number(done.text)}")
    assert ticket["address"] == "定州市建设路16号" and ticket["latitude"] == 38.516
    assert ticket["business_type"] == "leak"


def test_an_unknown_account_number_is_asked_again(stack: Stack) -> None:
    stack.say("r3", "帮我查一下水费")
    reply = stack.say("r3", "3199999999")
    assert "没有找到户号" in reply.text


def test_billing_answers_from_the_store(stack: Stack) -> None:
    stack.say("b1", "查询欠费")
    reply = stack.say("b1", "3100000003")
    balance = stack.api("/api/customers/3100000003/balance")
    assert "户号 3100000003" in reply.text
    if balance["arrears_fen"]:
        assert f"欠费 {balance['arrears']} 元" in reply.text
    else:
        assert "没有欠费" in reply.text
    assert f"预存余额 {balance['balance']} 元" in reply.text
    latest = balance["bills"][0]
    assert f"用水 {latest['volume_m3']} 吨" in reply.text


def test_inquiries_are_answered_from_the_knowledge_base_and_outages(stack: Stack) -> None:
    assert "身份证" in stack.say("i1", "二手房过户需要带什么材料").text
    outage = stack.say("i2", "最近有没有停水通知")
    assert "中山东路主管道改造计划停水" in outage.text


def test_ticket_status_from_the_store(stack: Stack) -> None:
    done = stack.say("s0", "我要投诉，抢修师傅态度很差")
    if "电话" in done.text:
        done = stack.say("s0", "13700001234")
    number = _ticket_number(done.text)
    reply = stack.say("s1", f"工单{number}到哪一步了")
    assert number in reply.text and "待派单" in reply.text


def test_asking_for_a_person_signals_handoff(stack: Stack) -> None:
    reply = stack.say("h1", "我要转人工客服")
    assert reply.handoff and reply.handoff_reason == "requested"
    assert "人工" in reply.text


def test_two_misunderstandings_in_a_row_hand_off(stack: Stack) -> None:
    first = stack.say("f1", "阿巴阿巴咕噜咕噜")
    assert not first.handoff and "没有理解" in first.text
    second = stack.say("f1", "嘀嘀嘀嘟嘟嘟")
    assert second.handoff and second.handoff_reason == "fallback"


def test_an_angry_complaint_gets_a_ticket_and_a_person(stack: Stack) -> None:
    stack.say("a1", "气死我了，停水三天了都没人管，什么破公司")
    reply = stack.say("a1", "13655556666")
    assert "GD" in reply.text and reply.handoff and reply.handoff_reason == "angry"


def test_the_bot_says_honestly_when_the_api_is_down(stack: Stack) -> None:
    stack.proc.send_signal(signal.SIGSTOP)  # the hotline API stops answering; Rasa keeps running
    try:
        stack.say("d1", "查水费")
        reply = stack.say("d1", "3100000004")
    finally:
        stack.proc.send_signal(signal.SIGCONT)
    assert reply.handoff and reply.handoff_reason == "api_unavailable"
    assert "暂时无法" in reply.text


def test_the_web_chat_talks_to_the_real_bot(stack: Stack) -> None:
    import asyncio

    import aiohttp

    async def talk() -> tuple[str, str]:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"http://127.0.0.1:{stack.http}/ws/chat?client=webchat-e2e-1") as ws:
                async def until(kind: str, check=lambda d: True) -> dict:
                    while True:
                        data = await asyncio.wait_for(ws.receive_json(), timeout=60)
                        if data["type"] == kind and check(data):
                            return data
                await until("history")
                await ws.send_json({"type": "message", "id": "w1", "text": "怎么办理过户"})
                answer = await until("message", lambda d: d["sender"] == "bot")
                await ws.send_json({"type": "message", "id": "w2", "text": "转人工客服"})
                status = await until("status", lambda d: d["status"] == "waiting")
                return answer["text"], status["status"]

    answer, status = asyncio.run(talk())
    assert "身份证" in answer and status == "waiting"
    waiting = stack.api("/api/conversations?status=waiting")["items"]
    assert any(c["external_user"] == "webchat-e2e-1" and c["handoff_reason"] == "requested" for c in waiting)


def test_a_person_asked_for_mid_report_hears_it_and_the_agent_gets_what_the_bot_learned(stack: Stack) -> None:
    assert "地址" in stack.say("r-learn", "我家楼下水管漏水了").text
    assert "电话" in stack.say("r-learn", "幸福路12号3单元").text
    reply = stack.say("r-learn", "转人工")  # while the form waits for a phone number
    assert reply.handoff and reply.category == "repair"
    assert reply.learned["business_type"] == "leak"
    assert "幸福路12号3单元" in reply.learned["address"]
