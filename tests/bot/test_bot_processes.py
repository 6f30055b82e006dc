"""The bot's servers as the service runs them: closed by tokens, supervised, never orphaned, never shared.

One service with the real Rasa for the module (the last test SIGKILLs it and starts it again), and
one short-lived service that finds a foreign process on its Rasa port. Every process an instance
starts carries its var directory in its environment, which is how the tests find (and, in
teardown, kill) them.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.config import ROOT
from tests.service_process import ServiceProcess

MODEL = ROOT / "bot" / "models" / "hotline.tar.gz"
TOKEN = "processes-test-token"
RASA_TOKEN = "-processes-test-rasa-token"  # begins with "-", as secrets.token_urlsafe does once in 64
pytestmark = pytest.mark.skipif(not MODEL.exists(), reason="no trained model: run scripts/setup.sh")


def instance_pids(var: Path) -> list[int]:
    """Every live process started with this var directory (the service and its children)."""
    marker = f"HOTLINE_SERVICE_VAR_DIR={var}".encode()
    pids = []
    for proc_dir in Path("/proc").iterdir():
        if proc_dir.name.isdigit():
            try:
                environ = (proc_dir / "environ").read_bytes().split(b"\0")
                state = (proc_dir / "stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if marker in environ and state != "Z":
                pids.append(int(proc_dir.name))
    return pids


def kill_instance(var: Path) -> None:
    """Teardown: nothing of ours may survive a test, whatever it did."""
    for pid in instance_pids(var):
        for kill in (os.killpg, os.kill):
            try:
                kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def request(url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})},
                                 method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.load(resp)
    except urllib.error.HTTPError as exc:
        return exc.code, None


def bot_health(stack: ServiceProcess) -> dict[str, Any]:
    return stack.api("/healthz")["components"]["bot"]


def listening_address(port: int) -> str:
    """The local address a TCP listener on the port is bound to, from /proc/net/tcp."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        cols = line.split()
        address, hex_port = cols[1].split(":")
        if cols[3] == "0A" and int(hex_port, 16) == port:
            return socket.inet_ntoa(bytes.fromhex(address)[::-1])
    return ""


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    var = tmp_path_factory.mktemp("bot-processes")
    stack = ServiceProcess(var, TOKEN, bot=True, env={"HOTLINE_BOT_RASA_TOKEN": RASA_TOKEN})
    try:
        yield stack.start()
    finally:
        stack.stop()
        kill_instance(var)


def test_both_servers_listen_on_loopback_only(stack: ServiceProcess) -> None:
    assert listening_address(stack.rasa) == "127.0.0.1"
    assert listening_address(stack.actions) == "127.0.0.1"
    health = bot_health(stack)
    assert health["up"] and health["actions"] and health["restarts"] == 0
    assert set(health["pids"]) == {"rasa", "actions"} and all(health["pids"].values())


def test_the_action_server_refuses_calls_without_the_service_token(stack: ServiceProcess) -> None:
    actions = f"http://127.0.0.1:{stack.actions}"
    call = {"next_action": "action_handoff", "sender_id": "intruder", "version": "3.6.2",
            "tracker": {"sender_id": "intruder", "slots": {}, "latest_message": {}, "events": []},
            "domain": {}}
    assert request(f"{actions}/webhook", call)[0] == 401
    assert request(f"{actions}/webhook", call, {"Authorization": "Bearer wrong"})[0] == 401
    assert request(f"{actions}/actions")[0] == 401
    status, listed = request(f"{actions}/actions", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and {"name": "action_handoff"} in listed


def test_rasa_refuses_its_api_and_rest_channel_without_its_token(stack: ServiceProcess) -> None:
    rasa = f"http://127.0.0.1:{stack.rasa}"
    message = {"sender": "token-check", "message": "我要转人工客服"}
    for token in ("", "?token=wrong", f"?token={TOKEN}"):  # the service token is not Rasa's token
        assert request(f"{rasa}/webhooks/rest/webhook{token}", message)[0] == 401
        assert request(f"{rasa}/conversations/token-check/tracker{token}")[0] == 401
        assert request(f"{rasa}/status{token}")[0] == 401
    status, reply = request(f"{rasa}/webhooks/rest/webhook?token={RASA_TOKEN}", message)
    assert status == 200 and any(m.get("custom", {}).get("handoff") for m in reply)
    status, tracker = request(f"{rasa}/conversations/token-check/tracker?token={RASA_TOKEN}")
    assert status == 200 and tracker["sender_id"] == "token-check"


def test_a_killed_rasa_is_restarted_and_answers_within_60_seconds(stack: ServiceProcess) -> None:
    before = bot_health(stack)
    os.kill(before["pids"]["rasa"], signal.SIGKILL)
    killed = time.monotonic()
    while True:
        health = bot_health(stack)
        if health["up"] and health["pids"]["rasa"] != before["pids"]["rasa"]:
            break
        assert time.monotonic() - killed < 60, health
        time.sleep(0.5)
    status, reply = request(f"http://127.0.0.1:{stack.rasa}/webhooks/rest/webhook?token={RASA_TOKEN}",
                            {"sender": "after-restart", "message": "我要转人工客服"})
    assert status == 200 and reply, reply
    assert time.monotonic() - killed < 60
    assert health["restarts"] == before["restarts"] + 1
    assert health["processes"]["rasa"]["last_exit"]["signal"] == "SIGKILL"
    assert health["pids"]["actions"] == before["pids"]["actions"]  # the action server was left alone
    assert f"Rasa server (pid {before['pids']['rasa']}) exited (signal SIGKILL)" in stack.log_tail(100_000)


def test_a_foreign_process_on_the_rasa_port_is_named_and_not_used(tmp_path: Path) -> None:
    foreign = socket.socket()
    foreign.bind(("127.0.0.1", 0))
    foreign.listen(8)
    received: list[bytes] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = foreign.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    data = conn.recv(4096)
                except OSError:
                    data = b""
                if data:
                    received.append(data)
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    threading.Thread(target=serve, daemon=True).start()
    port = foreign.getsockname()[1]
    other = ServiceProcess(tmp_path / "var", TOKEN, bot=True, env={"HOTLINE_BOT_RASA_TOKEN": RASA_TOKEN})
    other.rasa = port
    other.env["HOTLINE_BOT_RASA_PORT"] = str(port)
    try:
        other.start(seed=False, wait_for_bot=False, timeout=60)
        deadline = time.monotonic() + 30
        while f"port {port} on 127.0.0.1 is already in use by another process (pid {os.getpid()})" \
                not in other.log_tail(100_000):
            assert time.monotonic() < deadline, other.log_tail()
            time.sleep(0.5)
        health = bot_health(other)
        assert health["up"] is False and f"port {port}" in health["detail"]
        assert health["processes"]["rasa"]["state"] == "port_busy"
        # a resident's message is not sent there either
        assert request(f"{other.url}/api/openapi.json")[0] == 200
        assert received == [], received
    finally:
        other.stop()
        kill_instance(other.var)
        foreign.close()


def test_a_killed_service_leaves_no_process_behind_and_starts_again(stack: ServiceProcess) -> None:
    assert stack.proc is not None
    before = bot_health(stack)["pids"]
    children = set(before.values())
    assert children <= set(instance_pids(stack.var))
    stack.proc.send_signal(signal.SIGKILL)
    stack.proc.wait(timeout=10)
    deadline = time.monotonic() + 10
    while instance_pids(stack.var):
        assert time.monotonic() < deadline, f"left behind: {instance_pids(stack.var)}"
        time.sleep(0.2)
    stack.start(seed=False)
    after = bot_health(stack)
    assert after["up"] and after["restarts"] == 0 and not set(after["pids"].values()) & children
    status, _ = request(f"http://127.0.0.1:{stack.rasa}/webhooks/rest/webhook?token={RASA_TOKEN}",
                        {"sender": "after-service-restart", "message": "你好"})
    assert status == 200
