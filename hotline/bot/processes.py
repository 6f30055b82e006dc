"""Start and stop the Rasa server and the action server from the bot's own environment.

run_hotline.py serve does this when no bot URL is configured, so one command
runs everything; in a larger deployment the two servers run on their own and
their URLs go into [bot].
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from hotline.config import ROOT, Config

log = logging.getLogger(__name__)

BOT_DIR = ROOT / "bot"
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
MODEL = BOT_DIR / "models" / "hotline.tar.gz"


class BotProcesses:
    def __init__(self, config: Config, service_token: str) -> None:
        self.config = config
        self.service_token = service_token
        self.procs: list[asyncio.subprocess.Process] = []
        self.log_dir = config.var_dir / "logs"

    @property
    def rasa_url(self) -> str:
        return f"http://127.0.0.1:{self.config.bot.rasa_port}"

    @property
    def actions_url(self) -> str:
        return f"http://127.0.0.1:{self.config.bot.actions_port}"

    async def start(self) -> None:
        if not RASA.exists() or not MODEL.exists():
            raise FileNotFoundError(f"the bot is not set up ({RASA} or {MODEL} missing): run scripts/setup.sh")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        endpoints = self.config.var_dir / "rasa-endpoints.yml"
        actions = self.config.bot.actions_url or self.actions_url
        endpoints.write_text(f'action_endpoint:\n  url: "{actions}/webhook"\n', encoding="utf-8")
        env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3",
                   HOTLINE_API_URL=f"http://{self.config.http.host}:{self.config.http.port}",
                   HOTLINE_API_SERVICE_TOKEN=self.service_token)
        if not self.config.bot.actions_url:
            await self._spawn("actions", [str(RASA), "run", "actions", "--actions", "actions",
                                          "--port", str(self.config.bot.actions_port)], env)
        await self._spawn("rasa", [str(RASA), "run", "--enable-api", "--model", str(MODEL),
                                   "--endpoints", str(endpoints), "--interface", "127.0.0.1",
                                   "--port", str(self.config.bot.rasa_port)], env)

    async def _spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        out = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 (kept open for the child)
        proc = await asyncio.create_subprocess_exec(*argv, cwd=BOT_DIR, env=env, stdout=out,
                                                    stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        out.close()
        log.info("started %s (pid %d), log in %s", name, proc.pid, self.log_dir / f"{name}.log")
        self.procs.append(proc)

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), timeout=10)
            except asyncio.TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
        self.procs.clear()


def model_path() -> Path:
    return MODEL
