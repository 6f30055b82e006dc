"""A shift in the console, in a real Chromium against one real service process (no bot: a resident's
message goes straight to the agents' queue): the resident beside the conversation, a notification and
the tab's count for a new waiting conversation, a canned reply with its placeholders filled, the search
box, a supervisor's whisper, reassigning live on both consoles, and presence-based assignment."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.browser.console_people import console, conversation_of, waiting_resident
from tests.service_process import ServiceProcess

TOKEN = "shift-browser-token"
ACCOUNT = "3100000001"  # the demo town's first account: 城东片区, where an outage is announced


@pytest.fixture(scope="module")
def shift_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(tmp_path_factory.mktemp("shift"), TOKEN, bot=False).start()
    try:
        yield svc
    finally:
        svc.stop()


def test_an_agent_sees_the_resident_hears_of_new_residents_and_uses_canned_replies_and_search(
        shift_service: ServiceProcess, browser: Browser, people: list[BrowserContext]) -> None:
    svc = shift_service
    supervisor = console(browser, people, svc, "zhao.supervisor", notifications=True)
    supervisor.click("a[data-nav=supervise]")
    supervisor.fill("#cr-shortcut", "qf")
    supervisor.fill("#cr-title", "欠费提醒")
    supervisor.fill("#cr-text", "您好，户号{户号}目前有欠费，工单{工单号}正在处理。")
    supervisor.click("#cr-save")
    expect(supervisor.locator("#canned-rows")).to_contain_text("/qf")

    agent = console(browser, people, svc, "agent1", notifications=True)
    expect(agent).to_have_title("供水服务热线 · 坐席工作台")
    waiting_resident(browser, people, svc, "我家水管漏水，户号见工单")
    expect(agent).to_have_title(re.compile(r"^\(1\) 供水服务热线"))  # the count in the tab title, live
    agent.wait_for_function("window.shownNotifications.some(n => n.title === '新的会话等待人工接待')")

    conv = conversation_of(svc, "我家水管漏水，户号见工单")
    ticket = svc.api("/api/tickets", {"category": "repair", "business_type": "leak", "description": "厨房水管漏水",
                                      "channel": "web", "account_number": ACCOUNT, "conversation_id": conv})
    agent.locator(f"#waiting-list li[data-conversation-id='{conv}']").click()
    panel = agent.locator("#context")
    expect(panel).to_contain_text(ACCOUNT)  # found by the account on the conversation's ticket
    expect(panel).to_contain_text("余额")
    expect(panel).to_contain_text("欠费")
    expect(panel).to_contain_text(ticket["number"])  # an open ticket
    expect(panel).to_contain_text("中山东路主管道改造计划停水")  # the outage in 城东片区
    expect(panel.locator("dd").nth(1)).to_have_text(re.compile(r"^.\*+$"))  # the name masked as the bot says it

    agent.click("#take-over")
    expect(agent).to_have_title("供水服务热线 · 坐席工作台")
    agent.click("#reply-text")
    agent.keyboard.type("/qf")
    expect(agent.locator("#canned-menu")).to_contain_text("欠费提醒")
    agent.keyboard.press("Enter")
    expect(agent.locator("#reply-text")).to_have_value(
        f"您好，户号{ACCOUNT}目前有欠费，工单{ticket['number']}正在处理。")

    phoned = svc.api("/api/tickets", {"category": "repair", "business_type": "leak", "description": "水表漏水",
                                      "channel": "phone", "phone": "13912345678", "address": "建设路8号"})
    agent.fill("#gs-q", "13912345678")
    agent.press("#gs-q", "Enter")
    expect(agent.locator("#search-tickets")).to_contain_text(phoned["number"])
    agent.locator("#search-tickets tr", has_text=phoned["number"]).click()
    expect(agent.locator("#t-title")).to_contain_text(phoned["number"])
    expect(agent.locator(f"#ticket-rows tr[data-number='{phoned['number']}']")).to_have_class(re.compile("selected"))


def test_a_supervisor_whispers_to_the_agent_and_reassigns_live(
        shift_service: ServiceProcess, browser: Browser, people: list[BrowserContext]) -> None:
    svc = shift_service
    agent1 = console(browser, people, svc, "agent1", notifications=True)
    agent2 = console(browser, people, svc, "agent2", notifications=True)
    supervisor = console(browser, people, svc, "zhao.supervisor", notifications=True)
    resident = waiting_resident(browser, people, svc, "我要投诉抄表员")
    conv = conversation_of(svc, "我要投诉抄表员")
    agent1.goto(f"{svc.url}/console#queue/{conv}")
    agent1.click("#take-over")
    expect(agent1.locator(f"#active-list li[data-conversation-id='{conv}']")).to_be_visible()

    supervisor.goto(f"{svc.url}/console#queue/{conv}")
    expect(supervisor.locator("#reply-form")).to_be_hidden()  # not theirs: whisper or take over
    expect(supervisor.locator("#reply-hint")).to_contain_text("内部备注")
    supervisor.fill("#whisper-text", "先安抚居民，再核实抄表记录")
    supervisor.click("#whisper-send")
    expect(agent1.locator("#transcript li.whisper")).to_contain_text("先安抚居民，再核实抄表记录")  # live
    agent1.wait_for_function("window.shownNotifications.some(n => n.title === '主管给您发来内部备注')")
    resident.page.wait_for_timeout(500)
    expect(resident.page.locator("#log")).not_to_contain_text("先安抚居民")

    supervisor.select_option("#reassign-agent", "agent2")
    supervisor.click("#reassign-send")
    expect(agent2.locator(f"#active-list li[data-conversation-id='{conv}']")).to_be_visible()  # live, both sides
    expect(agent1.locator(f"#active-list li[data-conversation-id='{conv}']")).to_have_count(0)
    resident.sees("客服小王为您服务")
    expect(agent1.locator("#reply-form")).to_be_hidden()
    agent2.locator(f"#active-list li[data-conversation-id='{conv}']").click()
    agent2.fill("#reply-text", "您好，我是客服小王，继续为您处理")
    agent2.click("#reply-send")
    expect(agent1.locator("#transcript")).to_contain_text("客服 客服小王")  # every speaker by name
    resident.sees("继续为您处理")


def test_busy_agents_are_not_offered_conversations(
        shift_service: ServiceProcess, browser: Browser, people: list[BrowserContext]) -> None:
    svc = shift_service
    busy = console(browser, people, svc, "agent2", notifications=True)
    online = console(browser, people, svc, "agent3", notifications=True)
    busy.select_option("#presence", "busy")
    expect(busy.locator("#presence")).to_have_class(re.compile("busy"))
    online.select_option("#presence", "online")
    expect(online.locator("#presence")).to_have_class(re.compile("online"))
    waiting_resident(browser, people, svc, "在线的坐席来接")
    conv = conversation_of(svc, "在线的坐席来接")
    expect(online.locator(f"#active-list li[data-conversation-id='{conv}']")).to_be_visible()
    online.wait_for_function("window.shownNotifications.some(n => n.title === '新会话已分配给您')")
    assert svc.api(f"/api/conversations/{conv}")["agent_id"] != busy.evaluate("S.me.id")
    assert not busy.evaluate("window.shownNotifications.length")  # 忙碌: no sound, no notice
    for page in (busy, online):
        page.select_option("#presence", "away")
