"""People in the console tests, each in a browser profile of their own: agents and supervisors signed in to
the console, residents waiting on the web chat, and the conversation a resident's words started.

The `people` fixture (tests/browser/conftest.py) is the list of profiles a test opened; it closes them."""
from __future__ import annotations

from playwright.sync_api import Browser, BrowserContext, Page

from tests.browser.conftest import Resident, sign_in
from tests.service_process import ServiceProcess

# Records every desktop notification the page raises (the permission is granted to the profile).
RECORD_NOTIFICATIONS = """
(() => {
  const Real = window.Notification;
  window.shownNotifications = [];
  class Recording extends Real {
    constructor(title, options) {
      super(title, options);
      window.shownNotifications.push({ title, body: options && options.body });
    }
  }
  window.Notification = Recording;
})();
"""


def console(browser: Browser, people: list[BrowserContext], svc: ServiceProcess, username: str, *,
            width: int = 1500, height: int = 950, notifications: bool = False) -> Page:
    """A member of staff signed in to the console, in Beijing time and Chinese."""
    ctx = browser.new_context(viewport={"width": width, "height": height}, locale="zh-CN",
                              timezone_id="Asia/Shanghai", permissions=["notifications"] if notifications else [])
    if notifications:
        ctx.add_init_script(RECORD_NOTIFICATIONS)
    people.append(ctx)
    return sign_in(ctx.new_page(), svc.url, username)


def waiting_resident(browser: Browser, people: list[BrowserContext], svc: ServiceProcess, text: str) -> Resident:
    """A resident on /chat whose first words wait for an agent (the service runs without the bot)."""
    ctx = browser.new_context(locale="zh-CN")
    people.append(ctx)
    resident = Resident(ctx.new_page(), svc.url)
    resident.say(text)
    resident.sees("人工客服")
    return resident


def conversation_of(svc: ServiceProcess, text: str) -> int:
    """The id of the (recent) conversation in which a resident said `text`."""
    for c in svc.api("/api/conversations?limit=20")["items"]:
        if any(m["text"] == text for m in svc.api(f"/api/conversations/{c['id']}")["messages"]):
            return int(c["id"])
    raise AssertionError(f"no conversation with {text!r}")
