"""The callback (回访) in a real browser: a web-chat resident answers the survey on the chat page; a
telephone ticket's callback waits in the console's 回访任务 list until an agent records it.

The service runs with a routing file whose callback comes 2 seconds after a resolution and calling
hours around the clock, so its own scheduler carries the tasks out while the test watches."""
from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, expect
from sqlalchemy import select

from hotline.actors import SERVICE, SYSTEM
from hotline.config import ROOT, load_config
from hotline.context import build_context
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import TicketDraft
from models import Conversation
from tests.browser.conftest import Resident, run_async, sign_in
from tests.service_process import ServiceProcess

TOKEN = "callback-browser-token"


@pytest.fixture(scope="module")
def callback_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    var = tmp_path_factory.mktemp("callbacks")
    routing = (ROOT / "config" / "routing.yml").read_text(encoding="utf-8")
    fast = var / "routing-fast-callback.yml"
    fast.write_text(re.sub(r"^callback: .*$", "callback: {hours: 0.0005}", routing, flags=re.M), encoding="utf-8")
    svc = ServiceProcess(var, TOKEN, bot=False, env={
        "HOTLINE_SERVICE_ROUTING_FILE": str(fast), "HOTLINE_CALLBACK_CALLING_HOURS": "00:00-23:59",
        "HOTLINE_CALLBACK_INTERVAL_SECONDS": "0.5"}).start()
    try:
        yield svc
    finally:
        svc.stop()


async def _resolved_ticket(svc: ServiceProcess, channel: str, conversation_id: int | None = None,
                           phone: str | None = None) -> str:
    """File and resolve a leak straight through the lifecycle's door, on the service's own store."""
    ctx = build_context(load_config(environ=svc.env))
    try:
        async with ctx.sessions.begin() as session:
            if conversation_id is None and channel == "web":
                conversation_id = (await session.execute(select(Conversation.id).order_by(
                    Conversation.id.desc()).limit(1))).scalar_one()
            ticket = await lifecycle.create_ticket(session, ctx.router, TicketDraft(
                category="repair", business_type="leak", description="楼道水管漏水", channel=channel,
                conversation_id=conversation_id, phone=phone), SERVICE, ctx.clock())
            for action, kwargs in [("assign", {"assignee": "wang.repair"}), ("start", {}),
                                   ("resolve", {"note": "已更换漏水管段"})]:
                await lifecycle.transition(session, ctx.router, ticket, action, SYSTEM, ctx.clock(), **kwargs)
            return ticket.number
    finally:
        await ctx.engine.dispose()


def test_a_web_resident_answers_the_survey_on_the_chat_page(
        callback_service: ServiceProcess, contexts: Callable[[], BrowserContext]) -> None:
    resident = Resident(contexts().new_page(), callback_service.url)
    resident.say("楼道水管漏水了")
    resident.sees("人工客服")  # no bot in this service: the message reaches a person
    number = run_async(_resolved_ticket(callback_service, "web"))
    resident.sees("【回访】")  # the scheduler's survey, live on the open page
    resident.sees(number)
    resident.sees("已更换漏水管段")
    resident.say("1")
    resident.sees("已办结归档")
    ticket = callback_service.api(f"/api/tickets/{number}")
    assert ticket["status"] == "closed" and ticket["satisfaction"] == 5
    tasks = callback_service.api(f"/api/callbacks?ticket={number}")["items"]
    assert [(t["state"], t["result"]) for t in tasks] == [("answered", "satisfied")]


def test_a_telephone_callback_waits_for_an_agent_who_records_it(
        callback_service: ServiceProcess, contexts: Callable[[], BrowserContext]) -> None:
    agent = sign_in(contexts().new_page(), callback_service.url, "agent1")
    number = run_async(_resolved_ticket(callback_service, "phone", phone="13800138000"))
    expect(agent.locator("#callback-count")).to_have_text(re.compile(r"[1-9]"))  # live, without a reload
    agent.click("a[data-nav=callbacks]")
    row = agent.locator("#callback-rows tr", has_text=number)
    expect(row).to_contain_text("13800138000")
    expect(row).to_contain_text("需电话回访")
    row.locator(".cb-reached").select_option("basically_satisfied")
    row.locator(".cb-note").fill("电话回访，居民表示基本满意")
    row.locator("button").click()
    expect(agent.locator("#callback-rows")).not_to_contain_text(number)
    ticket = callback_service.api(f"/api/tickets/{number}")
    assert (ticket["status"], ticket["satisfaction"]) == ("closed", 3)
    assert ticket["events"][-2]["note"] == "电话回访，居民表示基本满意"
