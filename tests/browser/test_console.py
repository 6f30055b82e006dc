"""The agent console in a real browser, against the real service, bot and web chat."""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect
from sqlalchemy import update

from models import Ticket
from models.db import create_engine
from tests.browser.conftest import Resident, run_async, sign_in
from tests.service_process import ServiceProcess

Contexts = Callable[[], BrowserContext]


def _waiting_item(page: Page, text: str):
    return page.locator("#waiting-list li[data-conversation-id]", has_text=text)


def _conversation_id(page: Page, text: str) -> int:
    return int(_waiting_item(page, text).get_attribute("data-conversation-id") or 0)


def test_an_agent_takes_over_replies_and_files_a_ticket_with_the_bots_details(
        service: ServiceProcess, contexts: Contexts) -> None:
    agent = sign_in(contexts().new_page(), service.url, "agent1")
    resident = Resident(contexts().new_page(), service.url)

    resident.say("我家楼下水管漏水了")
    resident.sees("地址")  # the bot's repair form asks where
    resident.say("幸福路12号3单元")
    resident.sees("电话")
    resident.say("转人工")
    resident.sees("转接人工客服")

    item = _waiting_item(agent, "转人工")
    expect(item).to_be_visible()  # arrived live: the console was never reloaded
    expect(item).to_contain_text("报修")  # the bot's category
    expect(item.locator(".wait")).to_contain_text("已等待")
    item.click()
    transcript = agent.locator("#transcript")
    expect(transcript).to_contain_text("我家楼下水管漏水了")
    expect(transcript).to_contain_text("幸福路12号3单元")

    agent.click("#take-over")
    expect(agent.locator("#reply-form")).to_be_visible()
    expect(resident.page.locator("#state")).to_contain_text("人工客服 客服小张 为您服务")
    agent.fill("#reply-text", "您好，我是客服小张，维修人员会尽快联系您。")
    agent.click("#reply-send")
    resident.sees("您好，我是客服小张，维修人员会尽快联系您。")
    expect(transcript).to_contain_text("您好，我是客服小张")

    resident.say("好的，谢谢")
    expect(transcript).to_contain_text("好的，谢谢")  # live in the open conversation

    agent.click("#new-ticket")
    expect(agent.locator("#ticket-form")).to_be_visible()
    expect(agent.locator("#tf-category")).to_have_value("repair")
    expect(agent.locator("#tf-business-type")).to_have_value("leak")
    expect(agent.locator("#tf-address")).to_have_value(re.compile("幸福路12号3单元"))
    expect(agent.locator("#tf-description")).to_have_value(re.compile("水管漏水"))
    agent.fill("#tf-phone", "13800138000")
    agent.click("#tf-submit")
    linked = agent.locator("#conv-tickets")
    expect(linked).to_contain_text("管网抢修中心")
    number = re.search(r"GD\d{8}-\d{4,}", linked.inner_text()).group(0)  # type: ignore[union-attr]
    ticket = service.api(f"/api/tickets/{number}")
    assert ticket["business_type"] == "leak" and ticket["category"] == "repair"
    assert "幸福路12号3单元" in ticket["address"] and ticket["conversation_id"]

    agent.once("dialog", lambda d: d.accept())
    agent.click("#close-conv")
    resident.sees("请为我们的服务打分")
    resident.say("5")
    resident.sees("感谢您的评价")
    expect(agent.locator("#conv-meta")).to_contain_text("满意度：5分")
    agent.click("#conv-trail-box summary")  # the conversation's audit trail, like a ticket's
    trail = agent.locator("#conv-trail")
    expect(trail).to_contain_text("接入 · 客服小张")
    expect(trail).to_contain_text("结束会话 · 客服小张")
    expect(trail).to_contain_text("居民评价 · 居民 （5分）")


def test_two_agents_click_take_over_at_once_and_exactly_one_wins(
        service: ServiceProcess, contexts: Contexts) -> None:
    first = sign_in(contexts().new_page(), service.url, "agent2")
    second = sign_in(contexts().new_page(), service.url, "agent3")
    resident = Resident(contexts().new_page(), service.url)
    resident.say("请帮我转人工客服")
    for page in (first, second):
        _waiting_item(page, "请帮我转人工客服").click()
        expect(page.locator("#take-over")).to_be_visible()
    # Both requests leave before either answer comes back.
    first.evaluate("document.getElementById('take-over').click()")
    second.evaluate("document.getElementById('take-over').click()")
    for page in (first, second):
        expect(page.locator("#conv-meta")).to_contain_text("人工接待中")
    winners = [p for p in (first, second) if p.locator("#reply-form").is_visible()]
    losers = [p for p in (first, second) if p.locator("#conv-error").inner_text()]
    assert len(winners) == 1 and len(losers) == 1
    expect(losers[0].locator("#conv-error")).to_have_text("这个会话已由其他客服接待")
    expect(losers[0].locator("#reply-form")).to_be_hidden()
    expect(resident.page.locator("#state")).to_contain_text("人工客服")


def test_department_staff_see_only_their_departments_tickets(service: ServiceProcess, contexts: Contexts) -> None:
    repair = service.api("/api/tickets", {"category": "repair", "business_type": "leak",
                                          "description": "小区门口水管漏水", "channel": "phone"})
    meter = service.api("/api/tickets", {"category": "repair", "business_type": "meter_fault",
                                         "description": "水表不走字", "channel": "phone"})
    page = sign_in(contexts().new_page(), service.url, "chen.meter")
    expect(page.locator("[data-nav=queue]")).to_be_hidden()
    expect(page.locator("[data-nav=calls]")).to_be_hidden()
    page.goto(f"{service.url}/console#queue")
    expect(page).to_have_url(re.compile("#tickets$"))
    rows = page.locator("#ticket-rows tr")
    expect(rows.first).to_be_visible()
    assert set(rows.locator("td:nth-child(3)").all_inner_texts()) == {"表务科"}
    expect(page.locator(f"#ticket-rows tr[data-number='{meter['number']}']")).to_be_visible()
    expect(page.locator(f"#ticket-rows tr[data-number='{repair['number']}']")).to_have_count(0)

    page.goto(f"{service.url}/console#tickets/{repair['number']}")
    expect(page.locator(".toast.bad")).to_contain_text("记录不存在或无权查看")
    expect(page.locator("#ticket")).to_be_hidden()
    statuses = page.evaluate("""async () => [
        (await fetch('/api/queue')).status,
        (await fetch('/api/calls')).status,
        (await fetch('/api/conversations/1/take_over', {method: 'POST'})).status]""")
    assert statuses == [403, 403, 403]


def _backdate(service: ServiceProcess, number: str, hours: float) -> None:
    """Move a ticket's deadline into the past, as if the crew had let it slip."""
    async def run() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{service.var / 'hotline.db'}")
        async with engine.begin() as conn:
            await conn.execute(update(Ticket).where(Ticket.number == number).values(
                resolution_due_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=hours)))
        await engine.dispose()
    run_async(run())


def test_a_ticket_page_counts_down_and_offers_what_the_role_may_do_live(
        service: ServiceProcess, contexts: Contexts) -> None:
    ticket = service.api("/api/tickets", {"category": "repair", "business_type": "leak",
                                          "description": "阀门井漏水", "channel": "phone"})
    number = ticket["number"]
    agent = sign_in(contexts().new_page(), service.url, "agent1")
    agent.goto(f"{service.url}/console#tickets/{number}")
    expect(agent.locator("#t-countdown")).to_contain_text("距办结时限还有")
    expect(agent.locator("#t-actions button")).to_have_text(["派单", "转派", "备注"])
    agent.click("#t-actions button[data-action=assign]")
    agent.select_option("#a-assignee", "wang.repair")
    agent.click("#a-submit")
    expect(agent.locator("#t-title")).to_contain_text("已派单")
    expect(agent.locator("#t-trail")).to_contain_text("客服小张 派单 → 王师傅")

    crew = sign_in(contexts().new_page(), service.url, "wang.repair")
    crew.goto(f"{service.url}/console#tickets/{number}")
    crew.click("#t-actions button[data-action=start]")
    crew.click("#a-submit")
    expect(crew.locator("#t-title")).to_contain_text("处理中")
    expect(agent.locator("#t-title")).to_contain_text("处理中")  # the agent's page followed without a reload

    _backdate(service, number, hours=3)
    crew.reload()
    expect(crew.locator("#t-countdown")).to_contain_text("已超过办结时限 3小时")
    expect(crew.locator("#t-countdown")).to_have_class(re.compile("overdue"))
    crew.goto(f"{service.url}/console#tickets")
    crew.check("#f-overdue")
    expect(crew.locator(f"#ticket-rows tr[data-number='{number}'] td.due")).to_contain_text("已超时")

    crew.goto(f"{service.url}/console#tickets/{number}")
    crew.click("#t-actions button[data-action=resolve]")
    crew.click("#a-submit")
    expect(crew.locator("#a-note:invalid")).to_have_count(1)  # resolving needs a note: not sent without one
    expect(crew.locator("#t-title")).to_contain_text("处理中")
    crew.fill("#a-note", "更换阀门密封圈，已不再漏水")
    crew.click("#a-submit")
    expect(crew.locator("#t-title")).to_contain_text("已办结")
    expect(agent.locator("#t-actions button")).to_have_text(["记录回访", "备注"])


def test_resident_text_is_shown_as_text_never_run(service: ServiceProcess, contexts: Contexts) -> None:
    attack = '<img src=x onerror="window.__pwned=1">我家水管漏水'
    agent = sign_in(contexts().new_page(), service.url, "zhao.supervisor")
    dialogs: list[str] = []
    agent.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    resident = Resident(contexts().new_page(), service.url)
    resident.say(attack)
    resident.sees("智能客服")  # the bot answered (whatever it asks next)
    resident.say("转人工")
    resident.sees("转接人工客服")
    _waiting_item(agent, "转人工").last.click()
    expect(agent.locator("#transcript")).to_contain_text(attack)
    ticket = service.api("/api/tickets", {"category": "complaint", "channel": "web",
                                          "description": "<script>window.__pwned=2</script>服务态度差"})
    agent.goto(f"{service.url}/console#tickets/{ticket['number']}")
    expect(agent.locator("#t-fields")).to_contain_text("<script>window.__pwned=2</script>服务态度差")
    assert agent.evaluate("window.__pwned") is None and dialogs == []
    assert agent.locator("#transcript img, #t-fields script").count() == 0
