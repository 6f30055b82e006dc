"""The night of a burst main in a real browser: eight reports from one area appear to a supervisor as one
suspected incident, live; the supervisor confirms it and ends it; a dispatcher publishes an outage."""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Dialog, expect

from tests.browser.conftest import DEMO_PASSWORD, sign_in
from tests.service_process import ServiceProcess

TOKEN = "incident-browser-token"


@pytest.fixture(scope="module")
def incident_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(tmp_path_factory.mktemp("incidents"), TOKEN, bot=False).start()
    try:
        yield svc
    finally:
        svc.stop()


def _local(when: dt.datetime) -> str:
    """A datetime-local input's value, in the browser's time zone (Asia/Shanghai)."""
    return when.astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%dT%H:%M")


def test_a_supervisor_confirms_a_burst_main_and_ends_it(
        incident_service: ServiceProcess, contexts: Callable[[], BrowserContext]) -> None:
    supervisor = sign_in(contexts().new_page(), incident_service.url, "sun.repair")
    supervisor.click("a[data-nav=incidents]")
    expect(supervisor.locator("#incident-list")).to_contain_text("暂无")
    numbers = []
    for i in range(8):  # callers and WeChat residents from 城东片区 within minutes
        ticket = incident_service.api("/api/tickets", {
            "category": "repair", "business_type": "no_water", "description": "家里没水了",
            "channel": "phone" if i < 3 else "web", "phone": f"1380000{i:04d}",
            "address": f"定州市中山东路{i + 1}号"})
        numbers.append(ticket["number"])
    item = supervisor.locator("#incident-list li.incident")
    expect(item).to_contain_text("疑似")  # arrived live
    expect(item.locator("a.report-link")).to_have_count(8)
    expect(item).to_contain_text("城东片区")

    restore = dt.datetime.now(dt.UTC) + dt.timedelta(hours=4)
    item.locator(".i-restore").fill(_local(restore))
    item.locator(".i-text").fill("中山东路主管道爆裂，抢修人员已到场。")
    item.locator(".i-confirm").click()
    expect(item).to_contain_text("处置中")
    expect(supervisor.locator("#outage-list")).to_contain_text("城东片区")  # an unplanned outage
    active = incident_service.api("/api/incidents?status=active")["items"]
    assert sorted(active[0]["reports"]) == sorted(numbers)

    resolution = supervisor.locator("#incident-list li.incident .i-resolution")
    resolution.fill("主管道已修复，恢复供水。")
    # Another console publishes an outage while the supervisor is typing: the view refreshes live and what
    # was typed stays.
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
    incident_service.api("/api/outages", {"areas": ["城西片区"], "title": "西环路阀门更换", "planned": True,
                                          "starts_at": soon.isoformat(),
                                          "ends_at": (soon + dt.timedelta(hours=3)).isoformat()})
    expect(supervisor.locator("#outage-list")).to_contain_text("西环路阀门更换")
    expect(resolution).to_have_value("主管道已修复，恢复供水。")
    supervisor.locator("#incident-list li.incident .i-end").click()
    expect(supervisor.locator("#incident-list")).to_contain_text("暂无")
    for number in numbers:
        assert incident_service.api(f"/api/tickets/{number}")["status"] == "resolved"

    # A dispatcher of the network-repair centre publishes a planned outage.
    dispatcher = sign_in(contexts().new_page(), incident_service.url, "wang.repair")
    dispatcher.click("a[data-nav=incidents]")
    dispatcher.select_option("#o-areas", ["开发区"])
    dispatcher.fill("#o-title", "创业大道管道改造")
    start = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    dispatcher.fill("#o-start", _local(start))
    dispatcher.fill("#o-end", _local(start + dt.timedelta(hours=8)))
    dispatcher.check("#o-planned")  # not ticked by default
    dispatcher.once("dialog", lambda dialog: dialog.accept())  # 确定发布并通知居民吗？
    dispatcher.click("#outage-form button[type=submit]")
    expect(dispatcher.locator("#outage-list")).to_contain_text("创业大道管道改造")
    expect(dispatcher.locator("#o-title")).to_have_value("")  # sent: the form is empty, not ready to send twice
    expect(supervisor.locator("#outage-list")).to_contain_text("创业大道管道改造")  # live on the other console


def test_an_outage_typed_in_a_utc_browser_is_published_in_beijing_time(
        incident_service: ServiceProcess, browser: Browser) -> None:
    """The dispatcher's laptop is set to UTC: 18:30-22:00 typed is 18:30-22:00 Beijing time, said beside the
    boxes and read back before thousands of residents are told; 计划停水 is a choice, not a default."""
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN", timezone_id="UTC")
    try:
        page = sign_in(context.new_page(), incident_service.url, "wang.repair", DEMO_PASSWORD)
        assert page.evaluate("Intl.DateTimeFormat().resolvedOptions().timeZone") in ("UTC", "Etc/UTC")
        page.click("a[data-nav=incidents]")
        expect(page.locator("#o-zone")).to_have_text("北京时间（UTC+08:00）")
        expect(page.locator("#o-planned")).not_to_be_checked()
        day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).astimezone(BEIJING).date()
        page.select_option("#o-areas", ["城南片区"])
        page.fill("#o-title", "胜利路阀门检修")
        page.fill("#o-start", f"{day.isoformat()}T18:30")
        page.fill("#o-end", f"{day.isoformat()}T22:00")

        page.click("#outage-form button[type=submit]")  # no answer to the question: Playwright dismisses it
        expect(page.locator("#o-title")).to_have_value("胜利路阀门检修")  # nothing sent, the form as typed
        assert not _published(incident_service, "胜利路阀门检修")

        asked: list[str] = []

        def read_back(dialog: Dialog) -> None:
            asked.append(dialog.message)
            dialog.accept()
        page.once("dialog", read_back)
        page.click("#outage-form button[type=submit]")
        expect(page.locator("#outage-list")).to_contain_text("胜利路阀门检修")
        assert "城南片区" in asked[0] and "抢修停水" in asked[0] and "北京时间" in asked[0]
        assert f"{day.isoformat()} 18:30 至 {day.isoformat()} 22:00" in asked[0]
        outage = _published(incident_service, "胜利路阀门检修")
        assert outage is not None and outage["planned"] is False
        assert dt.datetime.fromisoformat(outage["starts_at"]) == dt.datetime.combine(day, dt.time(18, 30), BEIJING)
        assert dt.datetime.fromisoformat(outage["ends_at"]) == dt.datetime.combine(day, dt.time(22, 0), BEIJING)
        item = page.locator("#outage-list li.outage", has_text="胜利路阀门检修")
        expect(item).to_contain_text(f"{day.isoformat()} 18:30 至 {day.isoformat()} 22:00")

        item.locator(".o-until").fill(f"{day.isoformat()}T23:30")  # extended, in the same zone
        item.get_by_role("button", name="延长").click()
        expect(page.locator("#outage-list li.outage", has_text="胜利路阀门检修")).to_contain_text(
            f"{day.isoformat()} 23:30")
        outage = _published(incident_service, "胜利路阀门检修")
        assert outage is not None
        assert dt.datetime.fromisoformat(outage["ends_at"]) == dt.datetime.combine(day, dt.time(23, 30), BEIJING)
    finally:
        context.close()


BEIJING = dt.timezone(dt.timedelta(hours=8))


def _published(service: ServiceProcess, title: str) -> dict | None:
    return next((o for o in service.api("/api/outages")["items"] if o["title"] == title), None)
