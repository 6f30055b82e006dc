"""Fixtures: a migrated store on SQLite (always) and PostgreSQL (when configured).

Set HOTLINE_TEST_DATABASE_URL (e.g. postgresql://postgres@127.0.0.1:5432/test)
to run every store test on PostgreSQL as well; .ci/run does.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import text

from hotline.actors import Actor
from hotline.app import create_app
from hotline.auth.staff import upsert_staff
from hotline.config import Config
from hotline.context import AppContext, build_context
from hotline.tickets.departments import sync_departments
from models import Base
from models.db import create_engine
from models.migrate import upgrade

PG_URL = os.environ.get("HOTLINE_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
SERVICE_TOKEN = "test-service-token"
PASSWORD = "correct horse battery"
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


class Clock:
    """A settable clock so tests can cross holidays and deadlines."""

    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> dt.datetime:
        self.now += dt.timedelta(**kwargs)
        return self.now


async def eventually(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    """Polls until check() (plain or async) is truthy and returns its value: after-commit work (a
    resident's notice, incident detection) runs on its own task, later on a slow machine."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.02)


def until(check: Callable[[], Any], seconds: float, what: str) -> None:
    """eventually() for tests that run outside an event loop (a service process, a sipp call, a browser)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached in {seconds} s: {what}")
        time.sleep(0.02)


def local(*args: int) -> dt.datetime:
    """A moment given in Beijing time."""
    return dt.datetime(*args, tzinfo=SHANGHAI).astimezone(dt.UTC)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "hotline.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_migrated() -> str:
    import asyncio

    async def reset() -> None:
        engine = create_engine(PG_URL)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(reset())
    upgrade(PG_URL)
    return PG_URL


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "hotline.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite+aiosqlite:///{path}"
    else:
        url = request.getfixturevalue("pg_migrated")
        yield url
        import asyncio

        async def truncate() -> None:
            engine = create_engine(url)
            async with engine.begin() as conn:
                tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
                await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            await engine.dispose()

        asyncio.run(truncate())


@pytest.fixture
def clock() -> Clock:
    # A Thursday morning before the 2026 National Day holiday.
    return Clock(local(2026, 9, 24, 9, 0))


@pytest.fixture
def config(db_url: str, tmp_path: Path) -> Config:
    cfg = Config()
    cfg.database.url = db_url
    cfg.service.var_dir = str(tmp_path / "var")
    cfg.api.service_token = SERVICE_TOKEN
    cfg.escalation.enabled = False  # tests drive the sweep themselves
    cfg.callback.enabled = False  # and the callback sweep
    cfg.retention.enabled = False  # and the daily purge (tests/test_retention.py runs it)
    cfg.bot.enabled = False  # the bot's tests start Rasa once for the whole module
    cfg.sip.enabled = False  # the IVR's SIP tests start their own service process
    return cfg


@pytest_asyncio.fixture
async def ctx(config: Config, clock: Clock) -> AsyncIterator[AppContext]:
    context = build_context(config, clock)
    async with context.sessions.begin() as session:
        await sync_departments(session, context.router)
    yield context
    await context.engine.dispose()


@pytest.fixture(scope="session")
def password_hash() -> str:
    from hotline.auth.passwords import hash_password_sync
    return hash_password_sync(PASSWORD)


@pytest_asyncio.fixture
async def staff(ctx: AppContext, password_hash: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Actor]:
    """One staff member per role, plus the supervisors the routing file names."""
    from hotline.auth import staff as staff_module
    from hotline.auth.sessions import actor_for

    async def cached_hash(password: str) -> str:  # scrypt once per run, not per member
        return password_hash if password == PASSWORD else await staff_module_hash(password)

    staff_module_hash = staff_module.hash_password
    monkeypatch.setattr(staff_module, "hash_password", cached_hash)
    people = [
        ("agent1", "agent", "customer_service"), ("sup", "supervisor", "customer_service"),
        ("admin", "admin", None), ("crew", "department", "network_repair"),
        ("meterman", "department", "meter"), ("sun.repair", "supervisor", "network_repair"),
        ("qian.manager", "supervisor", "cs_management"), ("zhao.supervisor", "supervisor", "customer_service"),
    ]
    actors = {}
    async with ctx.sessions.begin() as session:
        for username, role, dept in people:
            member = await upsert_staff(session, username, PASSWORD, role, username, dept)
            actors[username] = actor_for(member)
        await sync_departments(session, ctx.router)
    return actors


@pytest_asyncio.fixture
async def client(ctx: AppContext, staff: dict[str, Actor]) -> AsyncIterator[TestClient]:
    app = create_app(ctx)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def login(client: TestClient, username: str) -> dict[str, str]:
    """Sign in and return the headers a browser would send (CSRF token)."""
    resp = await client.post("/api/auth/login", json={"username": username, "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    return {"X-CSRF-Token": (await resp.json())["csrf_token"]}


SERVICE = {"Authorization": f"Bearer {SERVICE_TOKEN}"}


@pytest.fixture(scope="session", autouse=True)
def no_peer_outlives_the_run() -> Iterator[None]:
    """Kamailio, sipp and any program started through tests/peers.py: none may be left running (a Kamailio
    worker once was, orphaned, after a whole run). Survivors are killed and the run fails, naming them."""
    yield
    from tests import peers
    left = peers.survivors()
    if left:
        peers.kill(left)
        pytest.fail("peers outlived the test run: " + "; ".join(
            f"{what} (process group {group}: pids {', '.join(map(str, pids))})" for what, group, pids in left))
