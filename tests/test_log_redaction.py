"""No resident's identifier in any log line, and var/ the service's alone: a real service process is taken
through a web chat (client id, phone, account), a WeChat push (openid), a customer search, a survey link and a
lookup of an account, then its log is searched for every one of those values and var/'s modes are read."""
from __future__ import annotations

import asyncio
import json
import stat
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from hotline.redact import mask, redact_url, scrub
from tests import wechat_client as wx
from tests.service_process import ServiceProcess, free_port

TOKEN = "log-redaction-service-token"
CLIENT_ID = "webchatclient4f2a9c"
PHONE = "13912345678"
ACCOUNT = "3100000042"
OPENID = "oLogRedactionOpenid9x"
SURVEY_TOKEN = "7.1999999999.Zm9yZ2VkLXN1cnZleS1saW5rLW1hYw"
QUERY = "李娜幸福路"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    env = {"HOTLINE_WECHAT_TOKEN": wx.TOKEN, "HOTLINE_WECHAT_APP_ID": wx.APP_ID, "HOTLINE_WECHAT_MODE": "plaintext",
           "HOTLINE_WECHAT_APP_SECRET": "secret",
           "HOTLINE_WECHAT_API_BASE_URL": f"http://127.0.0.1:{free_port()}"}  # nothing listens: sends fail
    svc = ServiceProcess(tmp_path_factory.mktemp("logs") / "var", TOKEN, bot=False, seed_accounts=60, env=env)
    svc.start(seed=True)
    try:
        yield svc
    finally:
        svc.stop()


def _get(svc: ServiceProcess, path: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(f"{svc.url}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def _web_chat(svc: ServiceProcess) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(
            f"{svc.url.replace('http', 'ws')}/ws/chat?client={CLIENT_ID}",
            headers={"Referer": f"{svc.url}/chat?client={CLIENT_ID}"}) as ws:
        assert (await ws.receive_json())["type"] == "history"
        await ws.send_json({"id": "m1", "text": f"家里停水了，我的电话{PHONE}，户号{ACCOUNT}"})
        async for frame in ws:  # the acknowledgement, then (the bot is off) the handoff notice
            data = json.loads(frame.data)
            if data.get("type") == "message" and data.get("sender") != "resident":
                break


def test_no_identifier_reaches_the_log_and_var_is_private(service: ServiceProcess) -> None:
    asyncio.run(_web_chat(service))
    query, body = wx.push(wx.message("text", OPENID, 880001, Content=f"我的户号{ACCOUNT}"), "plain")
    request = urllib.request.Request(f"{service.url}/wechat?{urllib.parse.urlencode(query)}&openid={OPENID}",
                                     data=body.encode(), method="POST")
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert _get(service, f"/api/customers?q={urllib.parse.quote(QUERY)}", bearer) == 200
    assert _get(service, f"/api/customers?q={PHONE}", bearer) == 200
    assert _get(service, f"/api/customers/{ACCOUNT}", bearer) == 200
    assert _get(service, f"/api/customers/{ACCOUNT}/balance", bearer) == 200
    assert _get(service, f"/survey/{SURVEY_TOKEN}") == 403  # a forged link: refused, not a 500
    assert _get(service, "/api/tickets", {"Authorization": "Bearer 不是令牌".encode().decode("latin-1")}) == 401
    service.stop()  # every line written

    log = service.log_tail(10_000_000)
    assert "GET /api/customers?q=- HTTP/1.1" in log and "/ws/chat?client=-" in log  # requests are still logged
    assert "/api/customers/-/balance" in log and "/survey/-" in log
    for value in (CLIENT_ID, PHONE, ACCOUNT, OPENID, SURVEY_TOKEN, QUERY, urllib.parse.quote(QUERY), TOKEN,
                  query["signature"], query["nonce"]):
        assert value not in log, f"{value!r} in the service log"

    var = service.var
    assert stat.S_IMODE(var.stat().st_mode) == 0o700
    private = [var / "hotline.db", var / "secrets" / "survey-link.key"]
    for path in private:
        assert path.exists() and stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for path in var.rglob("*"):  # whatever else the service made under var/
        if path.name == "serve.log":  # the test's own file, the child's stdout
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path.relative_to(var)} is {oct(mode)}"


def test_the_helpers_mask_what_they_are_given() -> None:
    assert mask(PHONE) == "*******5678" and mask("") == "-"
    assert mask(OPENID).startswith("#") and OPENID not in mask(OPENID) and mask(OPENID) == mask(OPENID)
    assert redact_url(f"GET /survey/{SURVEY_TOKEN}?x=1 HTTP/1.1") == "GET /survey/-?x=- HTTP/1.1"
    assert redact_url(f"https://h.example/chat?client={CLIENT_ID}#top") == "https://h.example/chat?client=-"
    assert redact_url("GET /api/tickets/GD20261126-0007 HTTP/1.1") == "GET /api/tickets/GD20261126-0007 HTTP/1.1"
    line = scrub(f"delivery to {PHONE} failed; openid={OPENID} +86 139-1234-5678 0312-1234567")
    assert PHONE not in line and OPENID not in line and "1234-5678" not in line and "1234567" not in line
    line = scrub("POST https://api.weixin.qq.com/cgi-bin/message/custom/send?access_token=ACCESS42TOKEN failed")
    assert "ACCESS42TOKEN" not in line and "custom/send?access_token=#" in line


def test_a_log_call_with_an_exception_is_scrubbed_too(tmp_path: Path) -> None:
    import logging

    from hotline import redact
    logger = logging.getLogger("test.redaction")
    handler = logging.FileHandler(tmp_path / "x.log")
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        redact.install(root)
        try:
            raise ValueError(f"bad phone {PHONE}")
        except ValueError:
            logger.exception("sending to %s failed", PHONE)
    finally:
        root.removeHandler(handler)
        handler.close()
    text = (tmp_path / "x.log").read_text()
    assert "sending to *******5678 failed" in text and "bad phone *******5678" in text and PHONE not in text


def test_a_recording_and_its_folders_are_private_whatever_the_umask(tmp_path: Path) -> None:
    import os

    from hotline.ivr.sip.rtp import write_wav
    old = os.umask(0o022)
    try:
        folder = tmp_path / "recordings" / "20261202"
        for part in (folder.parent, folder):  # as the IVR engine makes them
            part.mkdir(mode=0o700, exist_ok=True)
        assert write_wav(folder / "call-1.wav", [b"\xff" * 160] * 10, 0) > 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((folder / "call-1.wav").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == stat.S_IMODE(folder.parent.stat().st_mode) == 0o700
