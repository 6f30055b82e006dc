"""Two service processes on one PostgreSQL database: the resident talks to one, the agent's
console is on the other, and both still see each other live (LISTEN/NOTIFY)."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, expect
from sqlalchemy.engine import make_url

from tests.browser.conftest import TOKEN, Resident, run_async, sign_in
from tests.service_process import ServiceProcess, fresh_postgres_database

PG_URL = os.environ.get("HOTLINE_TEST_DATABASE_URL", "")
pytestmark = pytest.mark.skipif(not PG_URL, reason="set HOTLINE_TEST_DATABASE_URL (the CI does)")
DATABASE = "hotline_console_e2e"


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    url = make_url(PG_URL).set(database=DATABASE).render_as_string(hide_password=False)
    env = {"HOTLINE_DATABASE_URL": run_async(fresh_postgres_database(url))}
    var = tmp_path_factory.mktemp("two-processes")
    first = ServiceProcess(var / "a", TOKEN, bot=False, seed_accounts=10, env=env).start(seed=True)
    second = ServiceProcess(var / "b", TOKEN, bot=False, env=env)
    try:
        second.start(seed=False)
        yield first, second
    finally:
        second.stop()
        first.stop()


def test_a_resident_on_one_process_reaches_an_agent_on_another(
        two_processes: tuple[ServiceProcess, ServiceProcess], contexts: Callable[[], BrowserContext]) -> None:
    console_side, resident_side = two_processes
    agent = sign_in(contexts().new_page(), console_side.url, "agent1")
    resident = Resident(contexts().new_page(), resident_side.url)
    resident.say("水表箱里一直在滴水，请找人看看")  # no bot on these processes: it waits for a person
    item = agent.locator("#waiting-list li", has_text="水表箱里一直在滴水")
    expect(item).to_be_visible()
    item.click()
    agent.click("#take-over")
    expect(resident.page.locator("#state")).to_contain_text("人工客服 客服小张 为您服务")
    agent.fill("#reply-text", "收到，马上安排表务人员上门。")
    agent.click("#reply-send")
    resident.sees("收到，马上安排表务人员上门。")
    resident.say("好的")
    expect(agent.locator("#transcript")).to_contain_text("好的")
