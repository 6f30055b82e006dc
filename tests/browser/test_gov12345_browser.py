"""The console shows a 12345 ticket's order number, its 12345 limits and each message's delivery state.

Its own service process (no bot) with the exchange on and 12345's address pointing at a port where nothing
listens, so the sign-for message stays waiting with its error, as when 12345 is down.
"""
from __future__ import annotations

import datetime as dt
import json
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import BrowserContext, expect

from hotline.integrations import signing
from tests.browser.conftest import TOKEN, sign_in
from tests.fake_gov12345 import INBOUND_SECRET, OUTBOUND_SECRET, order
from tests.service_process import ServiceProcess, free_port


@pytest.fixture(scope="module")
def service12345(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    env = {"HOTLINE_GOV12345_INBOUND_SECRET": INBOUND_SECRET, "HOTLINE_GOV12345_OUTBOUND_SECRET": OUTBOUND_SECRET,
           "HOTLINE_GOV12345_BASE_URL": f"http://127.0.0.1:{free_port()}/api",
           "HOTLINE_GOV12345_BACKOFF_SECONDS": "1"}
    svc = ServiceProcess(tmp_path_factory.mktemp("gov12345"), TOKEN, bot=False, seed_accounts=10, env=env)
    svc.start(seed=True)
    try:
        yield svc
    finally:
        svc.stop()


def push(svc: ServiceProcess, data: dict[str, object]) -> dict[str, str]:
    body = json.dumps(data, ensure_ascii=False).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(f"{svc.url}/gov12345/orders", data=body, method="POST", headers={
        "Content-Type": "application/json", "X-Timestamp": timestamp,
        "X-Signature": signing.signature(INBOUND_SECRET, "POST", "/gov12345/orders", timestamp, body)})
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.loads(resp.read()))


def test_a_12345_ticket_shows_its_order_limits_and_message_states(
        service12345: ServiceProcess, contexts: Callable[[], BrowserContext]) -> None:
    now = dt.datetime.now(dt.UTC)
    answer = push(service12345, order("SH12345-20260924-0001", now))
    page = sign_in(contexts().new_page(), service12345.url, "sun.repair")
    page.goto(f"{service12345.url}/console#tickets/{answer['ticket']}")
    block = page.locator("#t-gov12345")
    expect(block).to_be_visible()
    expect(block.locator("#g-fields")).to_contain_text("SH12345-20260924-0001")
    expect(block.locator("#g-fields")).to_contain_text("12345办理时限")
    expect(block.locator("#g-fields")).to_contain_text("已签收")
    sign = block.locator("#g-messages tr[data-kind=sign]")
    expect(sign).to_contain_text("签收")
    expect(sign).to_contain_text("待发送")  # 12345 is unreachable: waiting, with the error shown
    expect(sign.locator("td.error")).not_to_be_empty(timeout=20_000)
