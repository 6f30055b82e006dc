"""The night of a burst main, every part real: five WeChat residents report no water to the trained bot
(the real push format), three callers report it to the IVR with sipp, all from 城东片区. A supervisor's
Chromium console shows one suspected incident with the eight reports, live, and confirms it; a ninth
resident is linked and told the expected restoration; ending the incident resolves all nine tickets,
tells every WeChat resident and schedules every reporter's callback (回访) on their own channel."""
from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web
from playwright.sync_api import BrowserContext, expect

from tests import wechat_client as wx
from tests.bot.test_bot_dialogues import MODEL, wechat
from tests.browser.conftest import sign_in
from tests.conftest import until
from tests.ivr import sipp
from tests.service_process import ServiceProcess
from tests.test_wechat import FakeWeChat

TOKEN = "burst-main-token"
EAST_ACCOUNTS = ["3100000001", "3100000006", "3100000011"]  # the demo town puts every fifth account in 城东片区
pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="no trained model: run scripts/setup.sh")


class FakeWeChatThread:
    """tests.test_wechat's fake WeChat API, served from its own thread for a service in another process."""

    def __init__(self) -> None:
        self.fake = FakeWeChat()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.url = ""

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.fake.app())
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())

    def start(self) -> FakeWeChatThread:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def texts(self, openid: str) -> list[str]:
        return [m["text"]["content"] for m in list(self.fake.sent) if m["touser"] == openid and "text" in m]


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, FakeWeChatThread]]:
    api = FakeWeChatThread().start()
    sip_port = sipp.free_udp_port()
    svc = ServiceProcess(tmp_path_factory.mktemp("burst"), TOKEN, bot=True, env={
        "HOTLINE_WECHAT_TOKEN": wx.TOKEN, "HOTLINE_WECHAT_APP_ID": wx.APP_ID, "HOTLINE_WECHAT_APP_SECRET": "s",
        "HOTLINE_WECHAT_API_BASE_URL": api.url, "HOTLINE_SIP_ENABLED": "true", "HOTLINE_SIP_PORT": str(sip_port)})
    svc.sip_port = sip_port  # type: ignore[attr-defined]
    try:
        yield svc.start(), api
    finally:
        svc.stop()
        api.stop()


def _wechat_report(svc: ServiceProcess, openid: str, house: int) -> tuple[str, str, str]:
    """The bot's repair form, as a resident fills it; returns the ticket number, the reply to the address
    and the last reply."""
    assert "地址" in wechat(svc, openid, "家里没水了")
    at_address = wechat(svc, openid, f"中山东路幸福家园{house}号楼")
    assert "电话" in at_address
    done = wechat(svc, openid, f"138123400{house:02d}")
    found = re.search(r"GD\d{8}-\d{4,}", done)
    assert found, done
    return found.group(0), at_address, done


def _phone_report(svc: ServiceProcess, account: str, caller: str, workdir: Path) -> str:
    """2 (report a repair), 2 (no water), the account number and #, on a real SIP call."""
    result, heard = sipp.call(f"127.0.0.1:{svc.sip_port}",  # type: ignore[attr-defined]
                              sipp.scenario(f"22{account}#", caller=caller), workdir)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert len(heard.arrivals) > 200  # the caller heard the prompts

    def ticket() -> str | None:  # the record is completed a moment after the last SIP message
        calls = svc.api(f"/api/calls?caller={caller}")["items"]
        return calls[0]["ticket_number"] if calls else None
    until(ticket, 10, f"a ticket from {caller}'s call")
    return str(ticket())


def test_eight_reports_on_two_channels_become_one_incident_that_closes_the_loop_for_all_nine(
        night: tuple[ServiceProcess, FakeWeChatThread], contexts: Callable[[], BrowserContext],
        tmp_path: Path) -> None:
    svc, api = night
    supervisor = sign_in(contexts().new_page(), svc.url, "sun.repair")
    supervisor.click("a[data-nav=incidents]")
    expect(supervisor.locator("#incident-list")).to_contain_text("暂无")

    residents = [f"openid-burst-{i}" for i in range(5)]
    numbers = [_wechat_report(svc, openid, i + 1)[0] for i, openid in enumerate(residents)]
    for i, account in enumerate(EAST_ACCOUNTS):
        numbers.append(_phone_report(svc, account, f"1390000000{i}", tmp_path / f"call{i}"))
    assert len(set(numbers)) == 8

    item = supervisor.locator("#incident-list li.incident")
    expect(item).to_have_count(1)  # one incident, not one per report
    expect(item).to_contain_text("疑似")  # arrived live
    expect(item).to_contain_text("城东片区")
    expect(item.locator("a.report-link")).to_have_count(8)
    restore = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=4)).astimezone(dt.timezone(dt.timedelta(hours=8)))
    item.locator(".i-restore").fill(restore.strftime("%Y-%m-%dT%H:%M"))
    item.locator(".i-text").fill("中山东路DN300主管道爆裂，抢修人员已到场。")
    item.locator(".i-confirm").click()
    expect(item).to_contain_text("处置中")
    told_time = f"{restore.month}月{restore.day}日{restore:%H:%M}"
    for openid in residents:  # every WeChat reporter hears that it is known, and when water returns
        until(lambda openid=openid: any("我们已掌握" in t and told_time in t for t in api.texts(openid)), 20,
              f"{openid} was not told the expected restoration")

    ninth, at_address, done = _wechat_report(svc, "openid-burst-9", 9)
    assert "目前正在停水" in at_address  # the bot names the incident's outage before taking the report
    expect(item.locator("a.report-link")).to_have_count(9)  # linked at once, live
    until(lambda: any("无需重复报修" in t and ninth in t and told_time in t
                      for t in [done, *api.texts("openid-burst-9")]), 20,
          f"the ninth resident was not told the expected restoration: {done!r} {api.texts('openid-burst-9')}")
    trail = svc.api(f"/api/tickets/{ninth}")["events"]  # one crew for the incident, not one per report
    assert any("已并入事件" in (e["note"] or "") for e in trail)

    item.locator(".i-resolution").fill("主管道已修复，恢复供水。")
    item.locator(".i-end").click()
    expect(supervisor.locator("#incident-list")).to_contain_text("暂无")
    everyone = [*numbers, ninth]
    assert {svc.api(f"/api/tickets/{n}")["status"] for n in everyone} == {"resolved"}
    for openid in [*residents, "openid-burst-9"]:
        until(lambda openid=openid: any("随区域抢修一并处理完毕" in t for t in api.texts(openid)), 20,
              f"{openid} was not told of the restoration")
    channels = {}
    for number in everyone:
        tasks = svc.api(f"/api/callbacks?ticket={number}")["items"]
        assert len(tasks) == 1 and tasks[0]["state"] == "pending", (number, tasks)
        channels[number] = tasks[0]["channel"]
    assert sorted(channels.values()) == ["phone"] * 3 + ["wechat"] * 6  # each on the channel it came from
