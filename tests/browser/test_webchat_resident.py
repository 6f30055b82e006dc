"""The resident's /chat page in a real Chromium at phone size: the greeting before anything is typed,
no missing icon, the place in the agents' queue as it changes, and after a reload the closed chat with
its ticket number, the rating as buttons and a way to start a new conversation.

The service runs without the bot (a resident's first message goes to the agents' queue), which is
all this page needs; the bot's own dialogues are tested in tests/bot/.
"""
from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import DEMO_PASSWORD, Resident, browser  # noqa: F401  (the fixture)
from tests.service_process import ServiceProcess

TOKEN = "webchat-browser-token"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "locale": "zh-CN"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(tmp_path_factory.mktemp("webchat"), TOKEN, bot=False).start()
    try:
        yield svc
    finally:
        svc.stop()


def _agent(browser: Browser, url: str) -> tuple[BrowserContext, dict[str, str]]:
    """An agent's session through the API (the console's own requests), for taking over and closing."""
    context = browser.new_context()
    resp = context.request.post(f"{url}/api/auth/login", data={"username": "agent1", "password": DEMO_PASSWORD})
    assert resp.ok, resp.text()
    return context, {"X-CSRF-Token": resp.json()["csrf_token"]}


def _phone_page(browser: Browser, missing: list[str]) -> Page:
    page = browser.new_context(**PHONE).new_page()
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    return page


def test_a_resident_waits_sees_the_queue_and_finds_the_closed_chat_after_a_reload(
        browser: Browser, service: ServiceProcess) -> None:
    missing: list[str] = []
    first = Resident(_phone_page(browser, missing), service.url)
    greeting = first.page.locator("#greeting")
    expect(greeting).to_be_visible()
    for can in ("报修", "投诉", "咨询", "查水费", "工单", "转人工"):
        expect(greeting).to_contain_text(can)
    expect(first.page.locator("a[href='/privacy']")).to_be_visible()

    first.say("楼道水管漏水了")
    expect(greeting).to_be_hidden()  # the conversation has begun
    expect(first.page.locator("#queue")).to_contain_text("您前面还有 0 位")
    second = Resident(_phone_page(browser, missing), service.url)
    second.say("家里水表不走了")
    expect(second.page.locator("#queue")).to_contain_text("您前面还有 1 位")

    agent, headers = _agent(browser, service.url)
    waiting = agent.request.get(f"{service.url}/api/queue").json()["waiting"]
    conv_id = waiting[0]["id"]  # oldest first: the first resident's
    assert agent.request.post(f"{service.url}/api/conversations/{conv_id}/take_over", headers=headers).ok
    expect(second.page.locator("#queue")).to_contain_text("您前面还有 0 位")  # moved up, without a reload
    expect(first.page.locator("#queue")).to_be_hidden()

    number = service.api("/api/tickets", {"category": "repair", "business_type": "leak", "channel": "web",
                                          "description": "楼道水管漏水", "conversation_id": conv_id})["number"]
    assert agent.request.post(f"{service.url}/api/conversations/{conv_id}/close", headers=headers).ok
    expect(first.page.locator(".choices button")).to_have_count(5)

    first.page.reload()
    expect(first.page.locator("#state")).to_have_text("会话已结束")
    first.sees("楼道水管漏水了")
    expect(first.page.locator("#tickets")).to_contain_text(number)
    expect(first.page.locator("#ended")).to_be_visible()
    expect(first.page.locator("#form")).to_be_visible()  # not rated yet: a digit may be typed as well
    first.page.get_by_role("button", name="5 非常满意").click()
    first.sees("感谢您的评价")
    expect(first.page.locator(".choices button").first).to_be_disabled()
    expect(first.page.locator("#form")).to_be_hidden()  # rated: read-only
    first.page.reload()
    expect(first.page.locator("#state")).to_have_text("会话已结束")
    expect(first.page.locator("#form")).to_be_hidden()
    first.sees("感谢您的评价")

    first.page.get_by_role("button", name="开始新的对话").click()
    expect(first.page.locator("#form")).to_be_visible()
    expect(first.page.locator("#greeting")).to_be_visible()  # greeted again, the old messages gone
    expect(first.page.locator("#log")).not_to_contain_text("楼道水管漏水了")
    assert missing == []  # no icon or asset the page asks for is missing
    agent.close()
