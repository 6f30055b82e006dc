"""显示全名 and 查阅记录 in a real Chromium against one real service process (no bot): an agent finds an
account in the search box with its name masked, reveals the full name for a reason, and the admin finds
that read, with its reason, in the read audit; an agent sees no 查阅记录."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.browser.console_people import console
from tests.service_process import ServiceProcess

TOKEN = "audit-browser-token"
ACCOUNT = "3100000001"


@pytest.fixture(scope="module")
def audit_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    svc = ServiceProcess(tmp_path_factory.mktemp("audit"), TOKEN, bot=False).start()
    try:
        yield svc
    finally:
        svc.stop()


def test_an_agent_reveals_a_name_for_a_reason_and_the_admin_sees_it_in_the_read_audit(
        audit_service: ServiceProcess, browser: Browser, people: list[BrowserContext]) -> None:
    svc = audit_service
    full_name = svc.api(f"/api/customers/{ACCOUNT}")["name"]
    assert re.fullmatch(r".\*+", full_name)  # masked for the service token too

    agent = console(browser, people, svc, "agent1")
    expect(agent.locator("a[data-nav=audit]")).to_be_hidden()  # 查阅记录 is for admins
    agent.fill("#gs-q", ACCOUNT)
    agent.press("#gs-q", "Enter")
    results = agent.locator("#search-results")
    expect(results).to_contain_text(ACCOUNT)  # found by its 户号
    expect(results).to_contain_text(full_name)  # masked
    agent.once("dialog", lambda d: d.accept("居民来电核对户名"))
    results.locator("button.reveal-name").first.click()
    revealed = results.locator("strong.full-name")
    expect(revealed).to_have_text(re.compile(r"^[^*]{2,}$"))
    assert revealed.inner_text()[0] == full_name[0]

    admin = console(browser, people, svc, "admin")
    admin.click("a[data-nav=audit]")
    admin.fill("#au-account", ACCOUNT)
    admin.click("#audit-filters button[type=submit]")
    rows = admin.locator("#audit-rows")
    expect(rows).to_contain_text("显示全名")
    expect(rows.locator("tr", has_text="显示全名")).to_contain_text("居民来电核对户名")
    expect(rows.locator("tr", has_text="显示全名")).to_contain_text("客服小张")
    expect(rows).to_contain_text("搜索")
