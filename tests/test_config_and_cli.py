"""Configuration overrides and the admin commands of run_hotline.py."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hotline.config import ROOT, ConfigError, load_config


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hotline.toml"
    path.write_text('[http]\nport = 9000\n[wechat]\ntoken = "from-file"\n', encoding="utf-8")
    cfg = load_config(path, environ={"HOTLINE_HTTP_PORT": "9100", "HOTLINE_WECHAT_API_BASE_URL": "http://127.0.0.1:1",
                                     "HOTLINE_ESCALATION_ENABLED": "false"})
    assert cfg.http.port == 9100
    assert cfg.wechat.token == "from-file"
    assert cfg.wechat.api_base_url == "http://127.0.0.1:1"
    assert cfg.escalation.enabled is False
    assert cfg.database_url.startswith("sqlite+aiosqlite:///") and cfg.database_url.endswith("var/hotline.db")


@pytest.mark.parametrize(("text", "env", "message"), [
    ("[http]\nport = 'x'\n", {}, "expected int"),
    ("[http]\nbogus = 1\n", {}, "unknown setting"),
    ("[http\n", {}, "hotline.toml"),
    ("", {"HOTLINE_HTTP_PORT": "eighty"}, "HOTLINE_HTTP_PORT"),
])
def test_bad_configuration_is_named(tmp_path: Path, text: str, env: dict, message: str) -> None:
    path = tmp_path / "hotline.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(path, environ=env)


def test_the_committed_example_configuration_loads() -> None:
    cfg = load_config(ROOT / "hotline.toml", environ={})
    assert cfg.http.port == 8080 and cfg.sip.port == 5060


@pytest.mark.parametrize(("env", "message"), [
    ({"HOTLINE_CALLBACK_CALLING_HOURS": "08:00-25:00"}, r"\[callback\] calling_hours: expected HH:MM-HH:MM"),
    ({"HOTLINE_OUTBOUND_CALLING_HOURS": "21:00-08:00"}, r"\[outbound\] calling_hours: '21:00-08:00' ends before"),
    ({"HOTLINE_CALLBACK_INTERVAL_SECONDS": "0"}, r"\[callback\] interval_seconds: expected more than 0"),
    ({"HOTLINE_ESCALATION_INTERVAL_SECONDS": "-30"}, r"\[escalation\] interval_seconds: expected 0 or more"),
    ({"HOTLINE_OUTBOUND_LINES": "0"}, r"\[outbound\] lines"),
    ({"HOTLINE_SIP_RTP_PORT_MIN": "31000"}, r"\[sip\] rtp_port_min: 31000 is above rtp_port_max"),
    ({"HOTLINE_HTTP_PORT": "70000"}, r"\[http\] port: expected a port"),
    ({"HOTLINE_SERVICE_ROUTING_FILE": "config/routing-missing.yml"}, r"\[service\] routing_file: no such file"),
    ({"HOTLINE_SIP_FLOWS_DIR": "no-flows-here"}, r"\[sip\] flows_dir: no such directory"),
    ({"HOTLINE_SERVICE_TIMEZONE": "Asia/Beijing"}, r"\[service\] timezone"),
    ({"HOTLINE_METRICS_ALLOWED": "127.0.0.1,prometheus.local"}, r"\[metrics\] allowed:.*prometheus.local"),
    ({"HOTLINE_WECHAT_API_BASE_URL": "api.weixin.qq.com"}, r"\[wechat\] api_base_url: expected scheme://"),
    ({"HOTLINE_GOV12345_MAX_ATTEMPTS": "0"}, r"\[gov12345\] max_attempts"),  # a plug-in's section too
    ({"HOTLINE_OUTBOUND_REGISTRAR": "pbx.example:70000"}, r"\[outbound\] registrar: expected host:port"),
])
def test_a_setting_that_cannot_work_is_refused_when_loaded_and_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(ROOT / "hotline.toml", environ=env)


def test_a_disabled_part_may_point_at_files_that_are_not_there() -> None:
    cfg = load_config(ROOT / "hotline.toml", environ={"HOTLINE_SIP_ENABLED": "false",
                                                      "HOTLINE_SIP_PROMPT_DIR": "no-prompts-here"})
    assert cfg.sip.prompt_dir == "no-prompts-here"


def test_calling_hours_may_be_the_whole_day() -> None:
    from zoneinfo import ZoneInfo

    from hotline.callbacks.scheduler import calling_window, next_calling_time
    from tests.conftest import local
    cfg = load_config(ROOT / "hotline.toml", environ={"HOTLINE_CALLBACK_CALLING_HOURS": "00:00-24:00"})
    window, tz = calling_window(cfg.callback.calling_hours), ZoneInfo("Asia/Shanghai")
    for moment in (local(2026, 9, 25, 0, 0), local(2026, 9, 25, 12, 0), local(2026, 9, 25, 23, 59, 59)):
        assert next_calling_time(moment, window, tz) == moment  # any time: at once


def test_a_bad_setting_stops_the_start_naming_its_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update(HOTLINE_SERVICE_VAR_DIR=str(tmp_path / "var"), HOTLINE_CALLBACK_CALLING_HOURS="8:00-21:00pm")
    result = subprocess.run([sys.executable, str(ROOT / "run_hotline.py"), "serve"], text=True, capture_output=True,
                            env=env, cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert "error: [callback] calling_hours: expected HH:MM-HH:MM" in result.stderr
    assert "'8:00-21:00pm'" in result.stderr


def _run(args: list[str], tmp_path: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env["HOTLINE_SERVICE_VAR_DIR"] = str(tmp_path / "var")
    return subprocess.run([sys.executable, str(ROOT / "run_hotline.py"), *args], input=stdin, text=True,
                          capture_output=True, env=env, cwd=tmp_path, timeout=120)


def test_migrate_seed_and_adduser(tmp_path: Path) -> None:
    assert "HOTLINE_DATABASE_URL" in _run(["--help"], tmp_path).stdout
    result = _run(["migrate"], tmp_path)
    assert result.returncode == 0, result.stderr
    result = _run(["seed-demo", "--accounts", "40"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "40 accounts" in result.stdout
    assert "already present" in _run(["seed-demo"], tmp_path).stdout  # idempotent

    result = _run(["adduser", "xiaomei", "--role", "agent", "--department", "customer_service"], tmp_path,
                  stdin="a long password\n")
    assert result.returncode == 0, result.stderr
    short = _run(["adduser", "x", "--role", "agent"], tmp_path, stdin="short\n")
    assert short.returncode == 2 and "at least 8" in short.stderr

    db = sqlite3.connect(tmp_path / "var" / "hotline.db")
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT count(*) FROM customers").fetchone()[0] == 40
        assert db.execute("SELECT count(*) FROM bills").fetchone()[0] == 40 * 12
        role, hashed = db.execute("SELECT role, password_hash FROM staff WHERE username='xiaomei'").fetchone()
        assert role == "agent" and hashed.startswith("scrypt$") and "a long password" not in hashed
        supervisor = db.execute("SELECT s.username FROM departments d JOIN staff s ON s.id = d.supervisor_id "
                                "WHERE d.code='network_repair'").fetchone()[0]
        assert supervisor == "sun.repair"
    finally:
        db.close()


def test_serve_starts_and_reports_health(tmp_path: Path) -> None:
    import socket
    import time
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    with socket.socket(type=socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        sip_port = s.getsockname()[1]
    env.update(HOTLINE_SERVICE_VAR_DIR=str(tmp_path / "var"), HOTLINE_HTTP_PORT=str(port),
               HOTLINE_BOT_ENABLED="false", HOTLINE_SIP_PORT=str(sip_port))
    proc = subprocess.Popen([sys.executable, str(ROOT / "run_hotline.py")], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
                    health = json.load(resp)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("service did not start")
        assert health["components"]["database"]["up"] is True
        assert health["components"]["sip"]["up"] is True and health["components"]["sip"]["flow"] == "main"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:  # never leave a service behind to fail the run
            proc.kill()
            proc.wait(timeout=10)
