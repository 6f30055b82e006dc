"""报表 and /commitments in Chromium, against one service process (no bot) shared by the module."""
from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import TOKEN, sign_in
from tests.service_process import ServiceProcess

Contexts = Callable[[], BrowserContext]
RESIDENT = {"contact_name": "欧阳娜娜", "phone": "13700001111", "address": "和平路77号", "account_number": "3100000007"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(tmp_path_factory.mktemp("reports"), TOKEN, bot=False).start()
    try:
        kinds = (("repair", "leak"), ("repair", "burst_main"), ("complaint", "complaint_service"))
        for category, business_type in kinds:
            svc.api("/api/tickets", {"category": category, "business_type": business_type, "channel": "phone",
                                     "description": "报表测试", **RESIDENT})
        yield svc
    finally:
        svc.stop()


def _canvas_has_content(page: Page, selector: str) -> bool:
    return bool(page.evaluate("""(sel) => {
        const c = document.querySelector(sel + ' canvas');
        if (!c || !c.width || !c.height) return false;
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let painted = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) painted++;
        return painted > 500;
    }""", selector))


def test_a_supervisor_draws_and_downloads_a_report(service: ServiceProcess, contexts: Contexts) -> None:
    page = sign_in(contexts().new_page(), service.url, "sun.repair")
    page.click("a[data-nav=reports]")
    expect(page.locator("#r-figures .figure[data-key=tickets_received]")).to_be_visible()
    page.select_option("#r-department", "network_repair")
    page.click("#r-submit")
    expect(page.locator("#r-scope")).to_contain_text("管网抢修中心")
    received = page.locator("#r-figures .figure[data-key=tickets_received] .value")
    expect(received).not_to_have_text("0")
    for section in ("by_day", "heatmap", "by_channel", "by_business_type"):
        page.wait_for_function("(sel) => !!document.querySelector(sel + ' canvas')", arg=f"#chart-{section}")
        assert _canvas_has_content(page, f"#chart-{section}"), section
    expect(page.locator("#rs-by_department tbody tr")).to_have_count(1)
    page.click("#report-tabs button[data-report=timeliness]")
    expect(page.locator("#r-figures .figure[data-key=on_time_resolution_rate]")).to_be_visible()
    assert page.locator("#rs-by_business_type canvas").count() == 1
    with page.expect_download() as info:
        page.click("#r-xlsx")
    assert info.value.suggested_filename.endswith(".xlsx")
    book = load_workbook(io.BytesIO(Path(info.value.path()).read_bytes()))
    assert book.sheetnames[0] == "主要指标" and "各业务类型时效" in book.sheetnames


def test_department_staff_see_their_department_and_agents_no_reports(service: ServiceProcess,
                                                                     contexts: Contexts) -> None:
    staff = sign_in(contexts().new_page(), service.url, "wang.repair")
    staff.click("a[data-nav=reports]")
    expect(staff.locator("#r-scope")).to_contain_text("管网抢修中心")
    expect(staff.locator("#r-department")).to_be_hidden()
    expect(staff.locator("#report-tabs button[data-report=channels]")).to_have_count(0)
    expect(staff.locator("#rs-by_department tbody tr")).to_have_count(1)
    expect(staff.locator("#rs-by_department tbody")).to_contain_text("管网抢修中心")

    agent = sign_in(contexts().new_page(), service.url, "agent1")
    expect(agent.locator("a[data-nav=reports]")).to_be_hidden()
    agent.goto(f"{service.url}/console#reports")
    expect(agent.locator("#reports-view")).to_be_hidden()


def test_commitments_on_a_phone(service: ServiceProcess, browser: Browser) -> None:
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, locale="zh-CN")
    try:
        page = ctx.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(f"{service.url}/commitments")
        expect(page.locator("h1")).to_have_text("供水服务承诺")
        body = page.locator("body").inner_text()
        for promise in ("爆管抢修", "按时办结", "收费标准", "水质标准", "近30天"):
            assert promise in body
        for personal in RESIDENT.values():
            assert personal not in body
        assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling
        assert not errors, errors  # the CSP refused nothing
    finally:
        ctx.close()
