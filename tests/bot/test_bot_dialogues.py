"""The bot end to end: run_hotline.py starts Rasa and the action server, which use the real API.

One service process (SQLite, demo accounts) for the whole module; residents'
conversations go to Rasa's REST channel exactly as the channels send them.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import signal
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from hotline.config import ROOT
from hotline.rasa.client import parse_reply
from tests import wechat_client as wx
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
                  env={"HOTLINE_BOT_RASA_TOKEN": RASA_TOKEN, "HOTLINE_WECHAT_TOKEN": wx.TOKEN,
                       # every web chat here comes from 127.0.0.1: one address, many residents
                       "HOTLINE_WEB_MESSAGES_PER_MINUTE": "1000", "HOTLINE_WEB_CONNECTIONS_PER_MINUTE": "1000",
                       # nothing leaves 127.0.0.1: late replies fail against a closed local port
                       "HOTLINE_WECHAT_API_BASE_URL": "http://127.0.0.1:9"}).start()
    try:
        yield stack
    finally:
        stack.stop()


def _ticket_number(text: str) -> str:
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
    async def dialogue(chat: WebChat) -> Turn:
        await chat.say("帮我查一下水费")
        return await chat.say("3199999999")
    assert "没有找到户号" in web_chat(stack, "unknown-account", dialogue).text


def test_billing_tells_a_stranger_the_amount_due_and_the_proven_owner_the_bills(stack: Stack) -> None:
    account = "3100000003"
    balance = stack.api(f"/api/customers/{account}/balance")
    phones = stack.api(f"/api/customers/{account}")["phones"]

    async def dialogue(chat: WebChat) -> tuple[Turn, Turn]:
        await chat.say("查询欠费")
        anonymous = await chat.say(account)
        proven = await chat.say(f"尾号{phones[0][-4:]}")
        return anonymous, proven
    anonymous, proven = web_chat(stack, "billing-owner", dialogue)
    due = balance["arrears_fen"] + balance["outstanding_fen"]
    assert f"户号 {account}" in anonymous.text
    assert (f"目前应缴 {due / 100:.2f} 元" if due else "目前没有待缴水费") in anonymous.text
    for private in ("预存余额", "吨", "→", "欠费 "):  # no balance, volume, reading (100→130) or arrears
        assert private not in anonymous.text, anonymous.text
    assert "后四位" in anonymous.text  # the offer to prove it
    latest = balance["bills"][0]
    assert "核实成功" in proven.text and f"预存余额 {balance['balance']} 元" in proven.text
    assert f"用水 {latest['volume_m3']} 吨" in proven.text and "读数" in proven.text


def test_an_accounts_tickets_are_for_its_proven_owner(stack: Stack) -> None:
    account = "3100000012"
    number = stack.api("/api/tickets", {"category": "repair", "business_type": "meter_fault", "channel": "phone",
                                        "description": "水表不走了", "phone": "13812340012",
                                        "account_number": account})["number"]
    phones = stack.api(f"/api/customers/{account}")["phones"]

    async def dialogue(chat: WebChat) -> tuple[Turn, Turn, Turn]:
        await chat.say("查询工单")
        asked = await chat.say(f"户号{account}")
        wrong = await chat.say("尾号" + next(d for d in ("0000", "1111", "2222")
                                             if not any(p.endswith(d) for p in phones)))
        proven = await chat.say(f"尾号{phones[0][-4:]}")
        return asked, wrong, proven
    asked, wrong, proven = web_chat(stack, "tickets-owner", dialogue)
    assert number not in asked.text and "核实" in asked.text and "后四位" in asked.text
    assert "对不上" in wrong.text and number not in wrong.text
    assert number in proven.text and "待派单" in proven.text


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
    async def talk() -> tuple[str, str]:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://127.0.0.1:{stack.http}/ws/chat?client=webchat-e2e-1") as ws:
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


# --- dialogues a resident can steer: through the web chat, against the real bot -------------------

class Turn:
    def __init__(self, lines: list[str], status: str | None) -> None:
        self.lines, self.status = lines, status
        self.text = "\n".join(lines)


class WebChat:
    """One resident on the web chat page: each `say` returns the bot's lines and any status change."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.count = ws, 0

    async def say(self, text: str) -> Turn:
        self.count += 1
        await self.ws.send_json({"type": "message", "id": f"m{self.count}", "text": text})
        lines: list[str] = []
        status, answered = None, False
        while True:
            try:
                data = await asyncio.wait_for(self.ws.receive_json(), timeout=1.0 if answered else 60)
            except TimeoutError:
                return Turn(lines, status)
            if data["type"] == "typing" and not data["on"]:
                answered = True
            elif data["type"] == "message" and data.get("sender") in ("bot", "system"):
                lines.append(data["text"])
            elif data["type"] == "status":
                status = data["status"]


def web_chat(stack: Stack, client: str, dialogue) -> Any:
    """Run `dialogue(chat)` on a fresh web chat connection."""
    async def run() -> Any:
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(f"http://127.0.0.1:{stack.http}/ws/chat?client=webchat-{client}") as ws:
            while (await asyncio.wait_for(ws.receive_json(), timeout=30))["type"] != "history":
                pass
            return await dialogue(WebChat(ws))
    return asyncio.run(run())


def tickets(stack: Stack, **filters: str) -> list[dict[str, Any]]:
    return stack.api("/api/tickets?" + urllib.parse.urlencode({"limit": "200", **filters}))["items"]


def test_an_answer_that_is_another_request_is_answered_not_stored(stack: Stack) -> None:
    async def dialogue(chat: WebChat) -> tuple[Turn, ...]:
        asked = await chat.say("我家停水了")
        other = await chat.say("水费多少钱一吨")
        back = await chat.say("继续")
        phone = await chat.say("清风街翠园5号楼2单元301")
        done = await chat.say("13811112222")
        return asked, other, back, phone, done
    asked, other, back, phone, done = web_chat(stack, "steer-slot-1", dialogue)
    assert "地址" in asked.text
    assert "3.35" in other.text and "继续" in other.text  # the price, then the way back to the report
    assert "地址" in back.text and "电话" in phone.text
    ticket = stack.api(f"/api/tickets/{_ticket_number(done.text)}")
    assert ticket["address"] == "清风街翠园5号楼2单元301" and ticket["business_type"] == "no_water"
    assert "水费" not in ticket["description"] and "停水" in ticket["description"]


def test_a_phone_question_answered_with_words_is_asked_once_more_then_a_person_is_offered(stack: Stack) -> None:
    async def dialogue(chat: WebChat) -> tuple[Turn, ...]:
        await chat.say("维修师傅把我家墙面弄坏了不管")
        first = await chat.say("我白天不在家")
        second = await chat.say("你们打过来就行")
        person = await chat.say("是")
        return first, second, person
    first, second, person = web_chat(stack, "steer-ask-twice", dialogue)
    assert "号码" in first.text
    assert "转人工" in second.text and "电话" not in second.text.replace("联系电话", "")
    assert person.status == "waiting"


def test_every_form_can_be_left(stack: Stack) -> None:
    async def dialogue(chat: WebChat) -> tuple[Turn, ...]:
        asked = await chat.say("查一下欠费")
        left = await chat.say("不查了")
        again = await chat.say("帮我查查水费")
        switched = await chat.say("我家停水了")
        stopped = await chat.say("算了")
        complaint = await chat.say("我要投诉")
        cancel = await chat.say("取消")
        return asked, left, again, switched, stopped, complaint, cancel
    asked, left, again, switched, stopped, complaint, cancel = web_chat(stack, "steer-leave", dialogue)
    assert "户号" in asked.text
    assert "已取消" in left.text and "户号" not in left.text
    assert "户号" in again.text
    assert "请提供您的户号" not in switched.text and "地址" in switched.text and "继续" in switched.text
    assert "已取消" in stopped.text
    assert "投诉" in complaint.text and "已取消" in cancel.text


def test_a_second_report_of_the_same_problem_joins_the_open_ticket(stack: Stack) -> None:
    account = "3100000011"

    async def first(chat: WebChat) -> Turn:
        await chat.say("水表不走了")
        await chat.say(f"户号{account}")
        return await chat.say("13822223333")
    number = _ticket_number(web_chat(stack, "dup-1", first).text)
    before = len(tickets(stack, account=account, status="open", category="repair"))

    async def second(chat: WebChat) -> tuple[Turn, Turn]:
        await chat.say(f"我家水表还是不转 户号{account}")
        joined = await chat.say("13822223333")
        other = await chat.say("不是同一个问题")
        return joined, other
    joined, other = web_chat(stack, "dup-2", second)
    # Another browser, not proven to own the account: told a ticket is being handled, not its number or state.
    assert "已有工单在处理" in joined.text and "不是同一个问题" in joined.text
    assert number not in joined.text and "待派单" not in joined.text
    trail = stack.api(f"/api/tickets/{number}")["events"]
    assert any("还是不转" in (e["note"] or "") for e in trail)
    new = _ticket_number(other.text)
    assert new != number
    assert len(tickets(stack, account=account, status="open", category="repair")) == before + 1


def test_an_answered_question_opens_no_ticket_and_a_follow_up_only_when_asked(stack: Stack) -> None:
    before = len(tickets(stack, category="inquiry"))

    async def dialogue(chat: WebChat) -> tuple[Turn, ...]:
        answer = await chat.say("怎么办理过户")
        follow = await chat.say("那要多久能办好")
        thanks = await chat.say("谢谢")
        return answer, follow, thanks
    answer, follow, _ = web_chat(stack, "inq-1", dialogue)
    assert "身份证" in answer.text and "GD" not in answer.text + follow.text
    assert "回复“是”" in follow.text
    assert len(tickets(stack, category="inquiry")) == before

    async def wants(chat: WebChat) -> Turn:
        await chat.say("新小区的供水管网移交需要什么手续")
        return await chat.say("是")
    done = web_chat(stack, "inq-2", wants)
    assert "咨询工单" in done.text and len(tickets(stack, category="inquiry")) == before + 1


@pytest.mark.parametrize("client,words", [("anger-1", "什么服务态度"),
                                          ("anger-2", "再不给我修好我就打12345投诉你们")])
def test_anger_is_judged_from_the_whole_message(stack: Stack, client: str, words: str) -> None:
    async def dialogue(chat: WebChat) -> Turn:
        reply = await chat.say(words)
        if "电话" in reply.text:
            reply = await chat.say("1390000" + str(4000 + len(client) + ord(client[-1])))
        return reply
    reply = web_chat(stack, client, dialogue)
    assert "GD" in reply.text and reply.status == "waiting"


def test_a_known_outage_comes_before_the_repair_form(stack: Stack) -> None:
    async def dialogue(chat: WebChat) -> tuple[Turn, Turn]:
        told = await chat.say("我家停水了，我住创业大道金域华府")
        other = await chat.say("不是")
        return told, other
    told, other = web_chat(stack, "outage-1", dialogue)
    assert "开发区" in told.text and "创业大道管道抢修临时停水" in told.text and "恢复" in told.text
    assert "地址" not in told.text and "GD" not in told.text
    assert "报修" in other.text and ("地址" in other.text or "电话" in other.text)


def test_a_leak_after_the_meter_is_explained_and_paid_repair_offered(stack: Stack) -> None:
    async def dialogue(chat: WebChat) -> tuple[Turn, ...]:
        boundary = await chat.say("厨房水龙头下面的软管漏水了")
        yes = await chat.say("是")
        await chat.say("兴华路和平里3号楼1单元202")
        done = await chat.say("13633334444")
        asked = await chat.say("漏水了")
        return boundary, yes, done, asked
    boundary, yes, done, asked = web_chat(stack, "boundary-1", dialogue)
    assert "产权人" in boundary.text and "有偿维修" in boundary.text and "GD" not in boundary.text
    assert "地址" in yes.text
    ticket = stack.api(f"/api/tickets/{_ticket_number(done.text)}")
    assert "有偿" in ticket["description"]
    assert "水表前" in asked.text  # where the leak is decides who repairs it


def test_the_handoff_carries_what_was_learned_cleanly(stack: Stack) -> None:
    stack.say("learn-3", "你好")
    stack.say("learn-3", "我家楼下水管一直在滴水")
    stack.say("learn-3", "朝阳路锦绣花园9号楼2单元")
    reply = stack.say("learn-3", "转人工")
    learned = reply.learned
    assert reply.category == "repair" and learned["business_type"] == "leak"
    assert learned["address"] == "朝阳路锦绣花园9号楼2单元"
    assert "滴水" in learned["description"]
    for noise in ("你好", "转人工", "锦绣花园"):
        assert noise not in learned["description"], learned


MSG_IDS = itertools.count(880001)  # WeChat's own message ids: without one, two pushes in a second are one


def wechat(stack: ServiceProcess, openid: str, text: str) -> str:
    """A plaintext-mode WeChat push to the service; the bot's passive reply."""
    query, body = wx.push(wx.message("text", openid, next(MSG_IDS), Content=text))
    req = urllib.request.Request(f"{stack.url}/wechat?{urllib.parse.urlencode(query)}", data=body.encode(),
                                 method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        passive = wx.reply_text(resp.read().decode())
    if passive:
        return passive
    # Slower than WeChat's passive window (a loaded machine): the answer is stored and sent by the API.
    conv = next(c for c in stack.api("/api/conversations?channel=wechat&limit=200")["items"]
                if c["external_user"] == openid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        messages = stack.api(f"/api/conversations/{conv['id']}")["messages"]
        last_in = max(i for i, m in enumerate(messages) if m["direction"] == "in")
        answer = [m["text"] for m in messages[last_in + 1:] if m["direction"] == "out"]
        if answer:
            return "\n\n".join(answer)
        time.sleep(0.3)
    raise AssertionError(f"no answer to {text!r}")


def test_a_wechat_resident_binds_an_account_and_asks_for_the_balance_without_the_number(stack: Stack) -> None:
    account = "3100000005"
    phones = stack.api(f"/api/customers/{account}")["phones"]
    assert "户号" in wechat(stack, "openid-bind-1", "我要绑定户号")
    assert "后四位" in wechat(stack, "openid-bind-1", account)
    wrong = next(d for d in ("0000", "1111", "2222") if not any(p.endswith(d) for p in phones))
    for _ in range(5):
        assert "对不上" in wechat(stack, "openid-bind-1", wrong)
    locked = wechat(stack, "openid-bind-1", phones[0][-4:])  # right, but too late: an hour's wait
    assert "一小时后" in locked and "成功" not in locked
    assert stack.api("/api/bindings?openid=openid-bind-1")["items"] == []

    # Five wrong proofs lock 3100000005 for everyone for an hour (the per-account limit): bind another.
    account = "3100000006"
    phones = stack.api(f"/api/customers/{account}")["phones"]
    assert "户号" in wechat(stack, "openid-bind-2", "绑定户号")
    wechat(stack, "openid-bind-2", account)
    bound = wechat(stack, "openid-bind-2", f"尾号{phones[0][-4:]}")
    assert "绑定成功" in bound and account in bound
    assert [a["account_number"] for a in stack.api("/api/bindings?openid=openid-bind-2")["items"]] == [account]
    balance = stack.api(f"/api/customers/{account}/balance")
    statement = wechat(stack, "openid-bind-2", "查一下我家欠不欠费")
    assert f"户号 {account}" in statement and f"预存余额 {balance['balance']} 元" in statement
    assert "解除绑定" in wechat(stack, "openid-bind-2", "解绑户号")
    asked = wechat(stack, "openid-bind-2", "查一下我家欠不欠费")
    assert "10位" in asked and f"户号 {account}" not in asked  # asked for the number again


def test_binding_asks_for_the_account_to_bind_and_takes_no_request_for_a_proof(stack: Stack) -> None:
    wechat(stack, "openid-bind-3", "帮我查一下水费")
    relative = wechat(stack, "openid-bind-3", "3100000007")  # a relative's bill: the amount due, and an offer
    assert "户号 3100000007" in relative and ("应缴" in relative or "没有待缴" in relative)
    assert "预存余额" not in relative and "后四位" in relative
    assert "10位户号" in wechat(stack, "openid-bind-3", "我要绑定户号")  # not that account, unasked
    assert "后四位" in wechat(stack, "openid-bind-3", "3100000008")
    other = wechat(stack, "openid-bind-3", "家里停水了")
    assert "对不上" not in other  # a request, not a holder's name: no try spent on it


def test_a_sixth_different_account_in_an_hour_is_politely_refused(stack: Stack) -> None:
    for i in range(13, 18):
        answer = wechat(stack, "openid-walker", f"查一下户号31000000{i}的水费")
        assert f"户号 31000000{i}" in answer and "预存余额" not in answer
    refused = wechat(stack, "openid-walker", "查一下户号3100000018的水费")
    assert "查询次数过多，请稍后再试" in refused and "户号 3100000018" not in refused
    with urllib.request.urlopen(f"{stack.url}/metrics", timeout=10) as resp:
        metrics = resp.read().decode()
    assert 'hotline_resident_refusals_total{channel="wechat",reason="lookups"} 1.0' in metrics


def test_binding_is_a_wechat_feature(stack: Stack) -> None:
    async def dialogue(chat: WebChat) -> Turn:
        return await chat.say("我要绑定户号")
    assert "微信公众号" in web_chat(stack, "bind-web-1", dialogue).text


def test_a_wechat_location_inside_an_area_hears_of_its_outage(stack: Stack) -> None:
    told = stack.say("loc-outage-1", "家里停水了", latitude=38.500, longitude=115.060)  # inside 开发区's outline
    assert "开发区" in told.text and "创业大道管道抢修临时停水" in told.text
