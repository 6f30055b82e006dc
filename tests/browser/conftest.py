"""A real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright) against a
real service process with the trained bot; residents use the real /chat page."""
from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from hotline.config import ROOT
from tests.service_process import ServiceProcess

TOKEN = "browser-test-token"
DEMO_PASSWORD = "hotline-demo"
MODEL = ROOT / "bot" / "models" / "hotline.tar.gz"
expect.set_options(timeout=15_000)


T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from a sync test; Playwright's own event loop occupies this thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def chromium_path() -> str:
    path = os.environ.get("HOTLINE_TEST_CHROMIUM") or shutil.which("chromium")
    if not path:
        raise RuntimeError("Chromium is missing: scripts/setup.sh installs Debian's chromium package")
    return path


@pytest.fixture(scope="module")  # not longer: while it lives, its event loop occupies the thread
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    if not MODEL.exists():
        raise RuntimeError("no trained bot model: run scripts/setup.sh")
    svc = ServiceProcess(tmp_path_factory.mktemp("console"), TOKEN, bot=True).start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def contexts(browser: Browser) -> Iterator[Callable[[], BrowserContext]]:
    """Fresh browser profiles (one per person), closed after the test."""
    made: list[BrowserContext] = []

    def new() -> BrowserContext:
        ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale="zh-CN",
                                  timezone_id="Asia/Shanghai")
        made.append(ctx)
        return ctx

    yield new
    for ctx in made:
        ctx.close()


@pytest.fixture
def people(browser: Browser) -> Iterator[list[BrowserContext]]:
    """The browser profiles a test opened (tests/browser/console_people.py adds to it), closed after it."""
    made: list[BrowserContext] = []
    yield made
    for ctx in made:
        ctx.close()


def sign_in(page: Page, base_url: str, username: str, password: str = DEMO_PASSWORD) -> Page:
    page.goto(f"{base_url}/console")
    page.fill("#login-username", username)
    page.fill("#login-password", password)
    page.click("#login-submit")
    expect(page.locator("#app")).to_be_visible()
    expect(page.locator("#live-status")).to_have_text("实时")
    return page


class Resident:
    """A resident on the public web chat page."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.page = page
        page.goto(f"{base_url}/chat")
        expect(page.locator("#state")).not_to_have_text("正在连接…")

    def say(self, text: str) -> None:
        self.page.fill("#text", text)
        self.page.press("#text", "Enter")

    def sees(self, text: str) -> None:
        expect(self.page.locator("#log")).to_contain_text(text)
