"""Start, watch and stop the Rasa server and the action server from the bot's own environment.

run_hotline.py serve does this when no bot URL is configured, so one command runs everything; in a
larger deployment the two servers run on their own and their URLs go into [bot].

What the supervision guarantees:
- each server is restarted when it exits or stops proving who it is (back-off 1 s, 2 s, 4 s … up to
  [bot] restart_backoff_max_seconds), logged, counted and visible in /healthz;
- the servers die with the service, even on SIGKILL (PR_SET_PDEATHSIG, see runtime/bot_identity.py),
  and a start stops what an earlier run of this instance left behind (pid files) instead of using it;
- a port held by another process is an error naming the port; the service never talks to it;
- runtime files live in <var>/bot/ and are keyed by port, so instances never share them; a lock
  file per port keeps a second instance with the same var/ and ports away.

With [bot] workers = N, N Rasa servers run on consecutive ports from [bot] rasa_port beside one
action server (one keeps up with them: it mostly waits for the hotline API). They share Rasa's SQL
tracker store in the service's PostgreSQL database (schema `rasa`, away from the service's tables)
and a Redis lock store (Rasa's, see runtime/hotline_lock_store.py), so any of them can carry on any
conversation; `route` keeps each conversation on one healthy worker (rendezvous hashing) and moves
it only when that worker is down.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import secrets
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlsplit

import aiohttp

from hotline.config import ROOT, Config
from hotline.rasa.client import BotUnavailable, prove_identity
from hotline.rasa.runtime import bot_identity

log = logging.getLogger(__name__)

BOT_DIR = ROOT / "bot"
RUNTIME = Path(__file__).resolve().parent / "runtime"
PYTHON = ROOT / ".venv-rasa" / "bin" / "python"
RASA = ROOT / ".venv-rasa" / "bin" / "rasa"
MODEL = BOT_DIR / "models" / "hotline.tar.gz"
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=10)  # a busy Rasa answers late; several misses mean hung
MISSES_BEFORE_RESTART = 3
HEALTHY_RESETS_BACKOFF = 120.0  # seconds up after which the next failure starts the back-off again
STOP_GRACE = 10.0
TRACKER_SCHEMA = "rasa"  # Rasa's `events` table lives here, never among the service's own tables
TRACKER_URL_ENV = "HOTLINE_BOT_TRACKER_URL"  # passwords go to the workers' environment, not into files
REDIS_PASSWORD_ENV = "HOTLINE_BOT_REDIS_PASSWORD"


class BotStartError(OSError):
    """The bot's servers cannot be started by this instance at all (not set up, or another owner)."""


class PortBusy(OSError):
    """Something this service did not start listens on a port one of its servers needs."""


@dataclass
class Child:
    """One supervised server and what /healthz says about it."""

    name: str  # "actions", "rasa" (one worker) or "rasa-1", "rasa-2" … (several)
    label: str
    port: int
    script: str
    args: list[str]
    token: str  # what the server must prove it holds
    env: dict[str, str] = field(default_factory=dict)
    proc: asyncio.subprocess.Process | None = None
    state: str = "stopped"  # starting, running, restarting, port_busy, stopped
    verified: bool = False
    restarts: int = 0
    last_exit: dict[str, Any] | None = None
    detail: str | None = None
    model: str | None = None
    up_since: float | None = None
    task: asyncio.Task[None] | None = None
    role: str = ""  # the identity role, "rasa" or "actions"

    def __post_init__(self) -> None:
        self.role = self.role or self.name

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def ok(self) -> bool:
        return self.alive and self.verified

    def snapshot(self) -> dict[str, Any]:
        return {"up": self.ok, "state": self.state, "pid": self.proc.pid if self.alive and self.proc else None,
                "port": self.port, "restarts": self.restarts, "last_exit": self.last_exit,
                **({"detail": self.detail} if self.detail and not self.ok else {})}


def rendezvous(key: str, names: list[str]) -> list[str]:
    """The names in the order `key` prefers them (highest random weight first).

    The same key always prefers the same name, and removing a name moves only the keys that
    preferred it, spread evenly over the rest: a worker going down moves its conversations and
    no others, and they come back when it is up again.
    """
    def weight(name: str) -> bytes:
        return hashlib.blake2b(f"{name}\0{key}".encode(), digest_size=8).digest()
    return sorted(names, key=weight, reverse=True)


class BotProcesses:
    def __init__(self, config: Config, service_token: str, rasa_token: str | None = None) -> None:
        self.config = config
        self.service_token = service_token
        self.rasa_token = rasa_token or config.bot.rasa_token or secrets.token_urlsafe(32)
        self.run_dir = config.var_dir / "bot"
        self.error: str | None = None  # why nothing runs at all
        self._stopping = asyncio.Event()
        self._locks: list[IO[str]] = []
        self._session: aiohttp.ClientSession | None = None
        bot = config.bot
        bot.check(config.database_url)
        self.shared_stores = bot.workers > 1
        self.failovers = 0  # messages sent again to another worker after theirs failed mid-request
        self.owns_actions = not bot.actions_url
        self.children: dict[str, Child] = {}
        if self.owns_actions:
            self.children["actions"] = Child(
                "actions", "action server", bot.actions_port, "actions_server.py",
                ["--port", str(bot.actions_port), "--host", bot.host], service_token)
        self.workers: list[Child] = []
        for index in range(bot.workers):
            port = bot.rasa_port + index
            name, label = ("rasa", "Rasa server") if bot.workers == 1 else \
                (f"rasa-{index + 1}", f"Rasa server {index + 1}")
            worker = Child(
                name, label, port, "rasa_server.py",
                ["--model", str(MODEL), "--endpoints", str(self._file("endpoints", "yml")),
                 "--credentials", str(self._file("credentials", "yml")),
                 "--interface", bot.host, "--port", str(port)], self.rasa_token, role="rasa")
            self.children[name] = worker
            self.workers.append(worker)

    # -- addresses ---------------------------------------------------------------------------------

    @property
    def _connect_host(self) -> str:
        return "127.0.0.1" if self.config.bot.host in ("", "0.0.0.0", "::") else self.config.bot.host

    @property
    def rasa_url(self) -> str:
        return f"http://{self._connect_host}:{self.config.bot.rasa_port}"

    @property
    def actions_url(self) -> str:
        return self.config.bot.actions_url.rstrip("/") or f"http://{self._connect_host}:{self.config.bot.actions_port}"

    def _file(self, kind: str, ext: str, child: Child | None = None) -> Path:
        """Runtime files are keyed by port: two instances sharing var/ never write each other's."""
        if child is not None:
            return self.run_dir / f"{child.name}-{child.port}.{ext}"
        return self.run_dir / f"{kind}-{self.config.bot.rasa_port}.{ext}"

    def url_of(self, child: Child) -> str:
        return f"http://{self._connect_host}:{child.port}" if child.role == "rasa" else self.actions_url

    # -- start and stop ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Claim this instance's runtime files, clear leftovers, and start supervising both servers.

        Returns at once: Rasa takes tens of seconds to load its model, and /healthz says when it is up.
        Raises BotStartError when the bot cannot run here at all.
        """
        try:
            if not PYTHON.exists() or not RASA.exists() or not MODEL.exists():
                raise BotStartError(f"the bot is not set up ({RASA} or {MODEL} missing): run scripts/setup.sh")
            await asyncio.to_thread(self._prepare)
        except OSError as exc:
            self.error = str(exc)
            raise
        env = dict(os.environ, RASA_TELEMETRY_ENABLED="false", TF_CPP_MIN_LOG_LEVEL="3",
                   HOTLINE_API_URL=f"http://{self.config.http.host}:{self.config.http.port}",
                   **{bot_identity.SERVICE_TOKEN_ENV: self.service_token,
                      bot_identity.PARENT_PID_ENV: str(os.getpid())})
        env.pop(bot_identity.RASA_TOKEN_ENV, None)
        rasa_env = {bot_identity.RASA_TOKEN_ENV: self.rasa_token}
        if self.shared_stores:
            try:
                await self._create_tracker_schema()
            except Exception as exc:  # the database is the service's own: say why the bot cannot start
                self.error = f"the tracker store's schema {TRACKER_SCHEMA!r} could not be created: {exc}"
                raise BotStartError(self.error) from exc
            rasa_env.update(self._shared_store_env())
        for child in self.children.values():
            child.env = dict(env, **(rasa_env if child.role == "rasa" else {}))
            child.task = asyncio.create_task(self._supervise(child), name=f"bot-{child.name}-supervisor")

    async def _create_tracker_schema(self) -> None:
        """Rasa creates its table but not its schema; two services starting at once both succeed."""
        from sqlalchemy import text

        from models.db import create_engine
        engine = create_engine(self.config.database_url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext('hotline.rasa.schema'))"))
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{TRACKER_SCHEMA}"'))
        finally:
            await engine.dispose()

    def _shared_store_env(self) -> dict[str, str]:
        """What the workers need to reach the shared stores, passwords included (never written to a file)."""
        from sqlalchemy.engine import make_url
        url = make_url(self.config.database_url).set(drivername="postgresql+psycopg2")
        if "ssl" in url.query:  # asyncpg's name for what libpq (psycopg2) calls sslmode
            url = url.update_query_dict({"sslmode": url.query["ssl"]}).difference_update_query(["ssl"])
        redis = urlsplit(self.config.bot.redis_url)
        return {TRACKER_URL_ENV: url.render_as_string(hide_password=False),
                "POSTGRESQL_SCHEMA": TRACKER_SCHEMA,  # Rasa's own setting: search_path of its connections
                "SQL_POOL_SIZE": "2",  # Rasa's store is synchronous: one connection at a time per worker
                "TICKET_LOCK_LIFETIME": str(self.config.bot.lock_lifetime_seconds),
                REDIS_PASSWORD_ENV: unquote(redis.password or "")}

    def _stores_yaml(self) -> str:
        """The endpoints file's tracker and lock stores for several workers (nothing with one: in memory)."""
        if not self.shared_stores:
            return ""
        from sqlalchemy.engine import make_url
        database = make_url(self.config.database_url)
        redis = urlsplit(self.config.bot.redis_url)
        db = (redis.path or "/0").strip("/") or "0"
        # One prefix per database: services sharing it share the conversations, hence their locks.
        where = f"{database.host}:{database.port}/{database.database}"
        prefix = "hotline" + hashlib.sha256(where.encode()).hexdigest()[:12]
        lines = ["tracker_store:", "  type: SQL", f"  url: ${{{TRACKER_URL_ENV}}}",
                 # Rasa's RedisLockStore, whose waiting messages keep their place (runtime/hotline_lock_store.py)
                 "lock_store:", "  type: hotline_lock_store.HotlineRedisLockStore",
                 f'  url: "{redis.hostname or "127.0.0.1"}"',
                 f"  port: {redis.port or 6379}", f"  db: {int(db)}", f"  key_prefix: {prefix}",
                 "  socket_timeout: 5"]
        if redis.username:
            lines.append(f'  username: "{unquote(redis.username)}"')
        if redis.password:
            lines.append(f"  password: ${{{REDIS_PASSWORD_ENV}}}")
        if redis.scheme == "rediss":
            lines.append("  use_ssl: true")
        return "\n".join(lines) + "\n"

    def _prepare(self) -> None:
        """Blocking file work, run in a thread: locks, leftovers, the endpoints and credentials files."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        for child in self.children.values():
            lock_path = self._file("", "lock", child)
            lock = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 (held for the service's life)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                owner = lock.read().strip() or "?"
                lock.close()
                self._release_locks()
                raise BotStartError(f"another hotline instance (pid {owner}) runs the {child.label} on port "
                                    f"{child.port} with {self.run_dir}; give this one other ports or var_dir"
                                    ) from None
            lock.seek(0)
            lock.truncate()
            lock.write(f"{os.getpid()}\n")
            lock.flush()
            self._locks.append(lock)
            _stop_leftover(self._file("", "pid", child), child.label)
        self._file("endpoints", "yml").write_text(
            "# Written by the hotline service at start; the token comes from the environment.\n"
            "action_endpoint:\n"
            f'  url: "{self.actions_url}/webhook"\n'
            "  headers:\n"
            # unquoted: Rasa expands ${VAR} only in plain YAML scalars
            f"    Authorization: Bearer ${{{bot_identity.SERVICE_TOKEN_ENV}}}\n" + self._stores_yaml(),
            encoding="utf-8")
        self._file("credentials", "yml").write_text(
            "# Written by the hotline service at start: the REST channel, closed by Rasa's token.\n"
            "bot_rest_channel.TokenRestInput:\n", encoding="utf-8")

    def _release_locks(self) -> None:
        for lock in self._locks:
            lock.close()
        self._locks.clear()

    async def stop(self) -> None:
        """Stop supervising, then stop both servers (SIGTERM to their process groups, SIGKILL after 10 s)."""
        self._stopping.set()
        tasks = [c.task for c in self.children.values() if c.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(self._kill(c) for c in self.children.values()))
        for child in self.children.values():
            child.state = "stopped"
            with contextlib.suppress(OSError):
                self._file("", "pid", child).unlink()
        self._release_locks()
        if self._session is not None:
            await self._session.close()

    # -- supervision -------------------------------------------------------------------------------

    async def _supervise(self, child: Child) -> None:
        """Start the server, watch it, and start it again whenever it exits or stops answering."""
        failures = 0
        bot = self.config.bot
        while not self._stopping.is_set():
            try:
                await self._spawn(child)
            except PortBusy as exc:
                child.state, child.detail = "port_busy", str(exc)
                delay = min(bot.restart_backoff_max_seconds, 2.0 ** failures)
                failures += 1
                log.error("%s not started: %s; trying again in %.0f s", child.label, exc, delay)
                await self._sleep(delay)
                continue
            except OSError as exc:
                child.state, child.detail = "restarting", f"{child.label} could not be started: {exc}"
                log.error("%s", child.detail)
                await self._sleep(min(bot.restart_backoff_max_seconds, 2.0 ** failures))
                failures += 1
                continue
            assert child.proc is not None
            reason = await self._watch(child, child.proc)
            if child.up_since is not None and time.monotonic() - child.up_since >= HEALTHY_RESETS_BACKOFF:
                failures = 0
            await self._kill(child)
            child.last_exit = _describe_exit(child.proc, reason)
            child.verified, child.up_since = False, None
            with contextlib.suppress(OSError):
                self._file("", "pid", child).unlink()
            if self._stopping.is_set():
                break
            delay = min(bot.restart_backoff_max_seconds, 2.0 ** failures)
            failures += 1
            child.restarts += 1
            child.state, child.detail = "restarting", f"{reason}; restart {child.restarts} in {delay:.0f} s"
            log.warning("%s (pid %d) %s (%s); restart %d in %.0f s, log in %s", child.label, child.proc.pid,
                        reason, _exit_text(child.last_exit), child.restarts, delay, self._file("", "log", child))
            await self._sleep(delay)

    async def _spawn(self, child: Child) -> None:
        out = await asyncio.to_thread(self._claim_port_and_log, child)
        try:
            child.proc = await asyncio.create_subprocess_exec(
                str(PYTHON), str(RUNTIME / child.script), *child.args, cwd=BOT_DIR, env=child.env,
                stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
        finally:
            out.close()
        child.state, child.detail, child.verified = "starting", None, False
        await asyncio.to_thread(_write_pid_file, self._file("", "pid", child), child.proc.pid)
        log.info("started %s (pid %d) on %s:%d, log in %s", child.label, child.proc.pid, self.config.bot.host,
                 child.port, self._file("", "log", child))

    def _claim_port_and_log(self, child: Child) -> IO[bytes]:
        """Blocking: refuse a port someone else holds, then open the log (kept open for the child)."""
        _check_port_free(self.config.bot.host, self._connect_host, child.port, child.label)
        log_file = open(self._file("", "log", child), "ab")  # noqa: SIM115 (handed to the child)
        log_file.write(f"--- {dt.datetime.now().isoformat(timespec='seconds')} starting {child.label}\n".encode())
        log_file.flush()
        return log_file

    async def _watch(self, child: Child, proc: asyncio.subprocess.Process) -> str:
        """Return why the server has to go: it exited, never came up, or stopped answering."""
        bot = self.config.bot
        exited = asyncio.ensure_future(proc.wait())
        started = time.monotonic()
        misses = 0
        try:
            while True:
                interval = 1.0 if not child.verified else bot.check_interval_seconds
                done, _ = await asyncio.wait({exited}, timeout=interval)
                if done:
                    return "exited" if child.up_since is not None else "exited before it answered"
                if await self._probe(child, proc):
                    misses = 0
                    if child.up_since is None:
                        child.up_since = time.monotonic()
                        child.state = "running"
                        log.info("%s (pid %d) is up and proved its identity after %.0f s", child.label,
                                 proc.pid, child.up_since - started)
                elif child.up_since is None:
                    if time.monotonic() - started > bot.start_timeout_seconds:
                        return f"did not answer within {bot.start_timeout_seconds:.0f} s"
                else:
                    misses += 1
                    if misses >= MISSES_BEFORE_RESTART:
                        return f"stopped answering ({child.detail})"
        finally:
            exited.cancel()

    async def _probe(self, child: Child, proc: asyncio.subprocess.Process) -> bool:
        """The server on the port must be our child (its pid) and hold its token; Rasa needs its model."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        url = self.url_of(child)
        try:
            identity = await prove_identity(self._session, url, child.role, child.token, PROBE_TIMEOUT)
            if identity["pid"] != proc.pid:
                raise BotUnavailable(f"{url} answers as pid {identity['pid']}, not as the {child.label} "
                                     f"this service started (pid {proc.pid})")
            if child.role == "rasa":
                if not identity.get("ready"):
                    raise BotUnavailable("Rasa has not loaded its model yet")
                async with self._session.get(f"{url}/status", params={"token": child.token},
                                             timeout=PROBE_TIMEOUT) as resp:
                    if resp.status != 200:
                        raise BotUnavailable(f"Rasa's /status answered HTTP {resp.status} to our token")
                    child.model = (await resp.json()).get("model_file")
        except BotUnavailable as exc:
            child.verified, child.detail = False, str(exc)
            return False
        except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as exc:
            child.verified, child.detail = False, f"{url}: {exc or type(exc).__name__}"
            return False
        child.verified, child.detail = True, None
        return True

    async def _kill(self, child: Child) -> None:
        proc = child.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=STOP_GRACE)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    # -- what the client and /healthz see ----------------------------------------------------------

    def rasa_ready(self) -> bool:
        return any(w.ok for w in self.workers)

    def rasa_detail(self) -> str:
        if self.error:
            return self.error
        return "; ".join(w.detail or f"the {w.label} is {w.state}" for w in self.workers)

    def route(self, key: str, exclude: frozenset[str] = frozenset()) -> tuple[str, str] | None:
        """(name, URL) of the worker that answers for `key` (a conversation's sender id) now.

        Only workers that proved who they are count: while its worker is up a conversation stays
        there; when it is down the conversation goes to the next one in its own order. `exclude`:
        workers that just failed this message, before their supervisor has noticed.
        """
        up = [w.name for w in self.workers if w.ok and w.name not in exclude]
        if not up:
            return None
        name = rendezvous(key, up)[0]
        return name, self.url_of(self.children[name])

    def status(self) -> dict[str, Any]:
        """The truth about the servers this service started (no request: the watch keeps it fresh).

        With several workers the bot is up while the action server and at least one worker are:
        residents are answered, and `workers` and `detail` name the ones that are down.
        """
        rasa = next((w for w in self.workers if w.ok), self.workers[0])
        up_workers = sum(w.ok for w in self.workers)
        others = [c for c in self.children.values() if c.role != "rasa"]
        result: dict[str, Any] = {"url": self.rasa_url, "model": rasa.model if rasa.ok else None,
                                  "up": up_workers > 0 and all(c.ok for c in others)}
        if self.owns_actions:
            result["actions"] = self.children["actions"].ok
        result["restarts"] = sum(c.restarts for c in self.children.values())
        result["pids"] = {name: c.proc.pid if c.alive and c.proc else None for name, c in self.children.items()}
        exits = [dict(c.last_exit, process=name) for name, c in self.children.items() if c.last_exit]
        result["last_exit"] = max(exits, key=lambda e: e["at"]) if exits else None
        result["processes"] = {name: c.snapshot() for name, c in self.children.items()}
        result["workers"] = [{"name": w.name, **w.snapshot()} for w in self.workers]
        if self.shared_stores:
            result["workers_up"] = up_workers
            result["failovers"] = self.failovers
        if not all(c.ok for c in self.children.values()):
            result["detail"] = self.error or "; ".join(
                f"{c.label}: {c.detail or c.state}" for c in self.children.values() if not c.ok)
        return result


async def redis_ping(url: str, timeout: float = 2.0) -> str | None:  # noqa: ASYNC109 (one deadline for all)
    """None when the Redis at `url` answers PING (after AUTH when the URL has a password), else why not.

    Plain RESP on a socket: the service itself needs no Redis client for this one question.
    """
    parts = urlsplit(url)
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 6379,
                                                           ssl=parts.scheme == "rediss" or None)
            commands: list[list[str]] = []
            if parts.password:
                commands.append(["AUTH", *([unquote(parts.username)] if parts.username else []),
                                 unquote(parts.password)])
            commands.append(["PING"])
            for command in commands:
                writer.write(f"*{len(command)}\r\n".encode() + b"".join(
                    f"${len(arg.encode())}\r\n".encode() + arg.encode() + b"\r\n" for arg in command))
                await writer.drain()
                answer = (await reader.readline()).decode(errors="replace").strip()
                if not answer.startswith("+"):
                    return f"Redis at {parts.hostname}:{parts.port or 6379} answered {command[0]} with " \
                           f"{answer[:100] or 'nothing'}"
        return None
    except (OSError, TimeoutError) as exc:
        return f"Redis at {parts.hostname}:{parts.port or 6379}: {exc or type(exc).__name__}"
    finally:
        if writer is not None:
            writer.close()


# -- helpers (blocking; called in threads) -----------------------------------------------------------


def _check_port_free(bind_host: str, connect_host: str, port: int, label: str) -> None:
    """A listener there, or a bind that fails, means someone else has the port: say which port (and pid)."""
    with socket.socket() as probe:
        probe.settimeout(1)
        busy = probe.connect_ex((connect_host, port)) == 0
    if not busy:
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is fine
            try:
                probe.bind((bind_host, port))
            except OSError:
                busy = True
    if busy:
        owners = _listening_pids(port)
        who = f" (pid {', '.join(map(str, owners))})" if owners else ""
        raise PortBusy(f"port {port} on {bind_host} is already in use by another process{who}; the {label} "
                       f"was not started and that process is not used")


def _listening_pids(port: int) -> list[int]:
    """Best effort: the pids (of this user) with a socket listening on the port."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(cols[9])
    pids: list[int] = []
    if not inodes:
        return pids
    for proc_dir in Path("/proc").iterdir():
        if not proc_dir.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc_dir / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.append(int(proc_dir.name))
                    break
    return pids


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot: with the pid, it names one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _write_pid_file(path: Path, pid: int) -> None:
    path.write_text(json.dumps({"pid": pid, "start_time": _start_time(pid), "service_pid": os.getpid()}) + "\n",
                    encoding="utf-8")


def _stop_leftover(pid_file: Path, label: str) -> None:
    """Stop the server an earlier run of this instance left behind (we hold the lock: its owner is gone)."""
    try:
        data = json.loads(pid_file.read_text(encoding="utf-8"))
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if data.get("start_time") is not None and _start_time(pid) == data["start_time"]:
        log.warning("stopping the %s (pid %d) left behind by an earlier run", label, pid)
        for sig, wait in ((signal.SIGTERM, STOP_GRACE), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and _start_time(pid) == data["start_time"]:
                time.sleep(0.1)
            if _start_time(pid) != data["start_time"]:
                break
    with contextlib.suppress(OSError):
        pid_file.unlink()


def _describe_exit(proc: asyncio.subprocess.Process, reason: str) -> dict[str, Any]:
    code = proc.returncode
    return {"at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "pid": proc.pid,
            "reason": reason, "code": code if code is not None and code >= 0 else None,
            "signal": signal.Signals(-code).name if code is not None and code < 0 else None}


def _exit_text(last_exit: dict[str, Any] | None) -> str:
    if not last_exit:
        return "no exit status"
    return f"signal {last_exit['signal']}" if last_exit["signal"] else f"exit code {last_exit['code']}"


def model_path() -> Path:
    return MODEL
