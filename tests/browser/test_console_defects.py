"""Console defects only a browser shows, in a real Chromium against one service process (no bot): the
transcript keeps a whisper in time order among messages, a reassignment reaches both agents (a notice
each, and the receiver's tab count), the canned replies' shortcut box checks its pattern, {姓名} is a
form of address and `/` with no match says so, the supervisor's menu stays whole at 1440 px, a toast
is never empty, and department staff get no conversation link they cannot open."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.browser.console_people import console, conversation_of, waiting_resident
from tests.service_process import ServiceProcess

TOKEN = "defects-browser-token"
ACCOUNT = "3100000001"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = ServiceProcess(tmp_path_factory.mktemp("defects"), TOKEN, bot=False).start()
    try:
        yield service
    finally:
        service.stop()


def test_whispers_in_time_order_and_a_reassignment_both_agents_hear_of(
        svc: ServiceProcess, browser: Browser, people: list[BrowserContext]) -> None:
    agent1 = console(browser, people, svc, "agent1")
    agent2 = console(browser, people, svc, "agent2")
    supervisor = console(browser, people, svc, "zhao.supervisor")
    resident = waiting_resident(browser, people, svc, "水费为什么这么高")
    conv = conversation_of(svc, "水费为什么这么高")
    svc.api("/api/tickets", {"category": "billing", "business_type": "billing_dispute", "description": "水费异常",
                             "channel": "web", "account_number": ACCOUNT, "conversation_id": conv})
    agent1.goto(f"{svc.url}/console#queue/{conv}")
    agent1.click("#take-over")
    expect(agent1.locator("#reply-form")).to_be_visible()

    supervisor.goto(f"{svc.url}/console#queue/{conv}")
    supervisor.fill("#whisper-text", "先查一下抄表记录")
    supervisor.click("#whisper-send")
    expect(agent1.locator("#transcript li.whisper")).to_contain_text("先查一下抄表记录")
    resident.say("我等着呢")  # after the whisper
    expect(agent1.locator("#transcript")).to_contain_text("我等着呢")
    agent1.reload()  # the whole transcript at once: messages and whispers, one trail in time order
    expect(agent1.locator("#transcript li.whisper")).to_have_count(1)
    texts = agent1.locator("#transcript li").all_inner_texts()
    assert [i for i, t in enumerate(texts) if "先查一下抄表记录" in t][0] < \
        [i for i, t in enumerate(texts) if "我等着呢" in t][0], texts

    # {姓名} is a form of address, not the masked name; `/` with no match says so.
    expect(agent1.locator("#context")).to_contain_text(ACCOUNT)
    expect(agent1.locator("#context")).to_contain_text("户号未核实")  # nobody proved the account
    agent1.click("#reply-text")
    agent1.keyboard.type("/nihao")
    expect(agent1.locator("#canned-menu")).to_contain_text("问候")  # the demo's canned replies
    agent1.keyboard.press("Enter")
    expect(agent1.locator("#reply-text")).to_have_value(re.compile(r"^.先生/女士您好，我是供水热线客服"))
    agent1.fill("#reply-text", "")
    agent1.keyboard.type("/zzzz")
    expect(agent1.locator("#canned-menu")).to_contain_text("没有匹配的快捷回复")
    expect(agent1.locator("#canned-menu")).to_contain_text("我的快捷回复")  # how to add one

    agent2.goto(f"{svc.url}/console#tickets")  # looking elsewhere: the count in the tab title tells
    expect(agent2).to_have_title("供水服务热线 · 坐席工作台")
    supervisor.select_option("#reassign-agent", "agent2")
    supervisor.click("#reassign-send")
    expect(agent2).to_have_title(re.compile(r"^\(1\) 供水服务热线"))
    expect(agent2.locator("#notice-count")).to_have_text("1")
    expect(agent2.locator("#notice-list")).to_contain_text(f"会话 #{conv} 转给您接待")
    expect(agent1.locator("#notice-count")).to_have_text("1")
    expect(agent1.locator("#notice-list")).to_contain_text(f"已将您接待的会话 #{conv} 转给")


def test_the_supervisors_page_at_1440_px(svc: ServiceProcess, browser: Browser,
                                         people: list[BrowserContext]) -> None:
    supervisor = console(browser, people, svc, "zhao.supervisor", width=1440)
    supervisor.click("a[data-nav=supervise]")
    # The shortcut box's pattern compiles with the v flag, so the browser checks it.
    supervisor.fill("#cr-shortcut", "has space")
    assert supervisor.evaluate("document.getElementById('cr-shortcut').checkValidity()") is False
    supervisor.fill("#cr-shortcut", "ok")
    assert supervisor.evaluate("document.getElementById('cr-shortcut').checkValidity()") is True
    # Every menu item on one line and inside the bar, with the counts a busy shift shows.
    supervisor.evaluate("for (const id of ['waiting-count', 'callback-count', 'incident-count', 'notice-count'])"
                        " document.getElementById(id).textContent = '12';"
                        "document.getElementById('who').textContent = '欧阳晓明（主管）';"
                        # This machine has no CJK font: its stand-in glyphs are about 8 px wide, where a CJK
                        # font's are 1 em (14 px). The spacing makes up the difference.
                        "document.querySelector('.topbar').style.letterSpacing = '6px'")
    items = supervisor.evaluate("""[...document.querySelectorAll('.topbar nav a')].filter((a) => !a.hidden
        && getComputedStyle(a).display !== 'none').map((a) => {
          const r = a.getBoundingClientRect(), tops = new Set();
          for (const node of a.childNodes) {  // the name's text, line by line (the badge sits higher)
            if (node.nodeType !== Node.TEXT_NODE || !node.textContent.trim()) continue;
            const range = document.createRange();
            range.selectNodeContents(node);
            for (const x of range.getClientRects()) tops.add(Math.round(x.top));
          }
          const lines = tops.size;
          return { text: a.textContent.trim(), lines, right: r.right, width: innerWidth };
        })""")
    assert len(items) >= 8
    for item in items:
        assert item["lines"] == 1 and item["right"] <= item["width"], item


def test_a_toast_is_never_empty_and_department_staff_get_no_dead_conversation_link(
        svc: ServiceProcess, browser: Browser, people: list[BrowserContext]) -> None:
    waiting_resident(browser, people, svc, "楼道水管漏水了")
    conv = conversation_of(svc, "楼道水管漏水了")
    ticket = svc.api("/api/tickets", {"category": "repair", "business_type": "leak", "description": "楼道漏水",
                                      "channel": "web", "account_number": ACCOUNT, "conversation_id": conv})
    crew = console(browser, people, svc, "wang.repair")
    crew.goto(f"{svc.url}/console#tickets/{ticket['number']}")
    expect(crew.locator("#t-fields")).to_contain_text(f"#{conv}")
    expect(crew.locator("#t-fields a")).to_have_count(0)  # 会话 is read in 会话队列, which they do not have
    crew.evaluate("toast('', true)")
    expect(crew.locator("#toasts .toast.bad").last).to_have_text(re.compile(r"\S"))
