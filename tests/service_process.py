"""Run `run_hotline.py serve` as a real process for end-to-end tests (bot, browser)."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from hotline.config import ROOT


async def _on_postgres_server(url: str, *statements: str) -> None:
    """Run statements on the server the URL names, connected to its `postgres` database."""
    import asyncpg
    from sqlalchemy.engine import make_url
    parsed = make_url(url)
    conn = await asyncpg.connect(host=parsed.host, port=parsed.port, user=parsed.username,
                                 password=parsed.password, database="postgres")
    try:
        for statement in statements:
            await conn.execute(statement.format(database=parsed.database))
    finally:
        await conn.close()


async def fresh_postgres_database(url: str) -> str:
    """Drop and create the database the URL names (on the same server); returns the URL."""
    await _on_postgres_server(url, 'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
                              'CREATE DATABASE "{database}"')
    return url


async def drop_postgres_database(url: str) -> None:
    await _on_postgres_server(url, 'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def consecutive_free_ports(count: int) -> int:
    """The first of `count` consecutive free ports on 127.0.0.1 (Rasa worker i listens on rasa_port + i)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            first = s.getsockname()[1]
        if first + count > 65535:
            continue
        try:
            for port in range(first, first + count):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue


class ServiceProcess:
    """One service process on 127.0.0.1 with its own var directory and free ports."""

    def __init__(self, var: Path, token: str, *, bot: bool, seed_accounts: int = 30,
                 env: dict[str, str] | None = None) -> None:
        self.var, self.token, self.bot = var, token, bot
        self.http, self.rasa, self.actions = free_port(), free_port(), free_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
        self.env.update(HOTLINE_SERVICE_VAR_DIR=str(var), HOTLINE_HTTP_PORT=str(self.http),
                        HOTLINE_BOT_RASA_PORT=str(self.rasa), HOTLINE_BOT_ACTIONS_PORT=str(self.actions),
                        HOTLINE_API_SERVICE_TOKEN=token, HOTLINE_ESCALATION_ENABLED="false",
                        HOTLINE_SIP_ENABLED="false", HOTLINE_BOT_ENABLED="true" if bot else "false")
        self.env.update(env or {})
        self.seed_accounts = seed_accounts
        self.proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, str(ROOT / "run_hotline.py"), *args], env=self.env, check=True,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, seed: bool = True, timeout: float = 300, wait_for_bot: bool = True) -> ServiceProcess:
        """Seed (optionally), start, and wait for /healthz (and, unless told not to, for the bot)."""
        self.var.mkdir(parents=True, exist_ok=True)
        if seed:
            self.run("seed-demo", "--accounts", str(self.seed_accounts))
        log = open(self.var / "serve.log", "w")  # noqa: SIM115 (the child writes to it while it runs)
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "run_hotline.py"), "serve"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                health = self.api("/healthz")
                if not self.bot or not wait_for_bot or health["components"]["bot"].get("up"):
                    return self
            except (urllib.error.URLError, ConnectionError, KeyError):
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                raise AssertionError("the service did not come up:\n" + self.log_tail())
            time.sleep(0.5)

    def log_tail(self, chars: int = 4000) -> str:
        path = self.var / "serve.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def api(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the API with the service token."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method="POST" if data else "GET",
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
