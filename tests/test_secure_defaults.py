"""Secure defaults: production refuses the demo's password and turns on Secure cookies and HSTS; init makes the
first admin; the sign-in throttle keeps locks and memory under a flood; /metrics judges the real peer; odd tokens
are a clean 401/403; expired sessions go; scrypt's parameters rise and old hashes are hashed again."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets

import pytest
from sqlalchemy import func, select

import run_hotline
from hotline.api import auth_views
from hotline.auth import passwords
from hotline.auth.production import check_staff, refuse_demo_password
from hotline.auth.staff import upsert_staff
from hotline.auth.throttle import LoginThrottle
from hotline.config import ConfigError
from hotline.demo.seed import DEMO_PASSWORD, seed_demo
from models import Staff, StaffSession
from tests.conftest import PASSWORD, SERVICE, login

# ---- production --------------------------------------------------------------------------------------------


async def test_production_refuses_to_start_while_a_demo_password_opens_the_console(ctx, staff) -> None:
    ctx.config.service.environment = "production"
    await run_hotline._check_production(ctx.config)  # the test staff's passwords are not the demo's
    async with ctx.sessions.begin() as session:
        await upsert_staff(session, "sup", DEMO_PASSWORD, "supervisor", None, "customer_service")
    with pytest.raises(ConfigError, match=r"staff sup still have the demo's public password"):
        await run_hotline._check_production(ctx.config)
    async with ctx.readers() as session:
        with pytest.raises(ConfigError):
            await check_staff(session)
    with pytest.raises(ConfigError, match="demo's public password"):
        refuse_demo_password(ctx.config, DEMO_PASSWORD)  # adduser in production
    ctx.config.service.environment = "development"
    await run_hotline._check_production(ctx.config)  # the demo stays the demo
    refuse_demo_password(ctx.config, DEMO_PASSWORD)


async def test_seed_demo_refuses_a_production_database(ctx) -> None:
    ctx.config.service.environment = "production"
    with pytest.raises(ConfigError, match="seed-demo: refused"):
        await seed_demo(ctx, accounts=5)
    async with ctx.readers() as session:
        assert (await session.execute(select(func.count()).select_from(Staff))).scalar_one() == 0


async def test_seed_demo_refuses_a_database_with_staff_of_its_own(ctx) -> None:
    await run_hotline._init(ctx.config, "boss")
    with pytest.raises(ConfigError, match="has its own staff"):
        await seed_demo(ctx, accounts=5)
    async with ctx.readers() as session:
        assert (await session.execute(select(Staff.username))).scalars().all() == ["boss"]


async def test_production_sends_hsts_and_secure_session_cookies(client, ctx) -> None:
    resp = await client.post("/api/auth/login", json={"username": "agent1", "password": PASSWORD})
    assert "Secure" not in resp.headers["Set-Cookie"] and "Strict-Transport-Security" not in resp.headers
    ctx.config.service.environment = "production"
    resp = await client.post("/api/auth/login", json={"username": "agent1", "password": PASSWORD})
    assert resp.status == 200
    assert "; Secure" in resp.headers["Set-Cookie"] and "HttpOnly" in resp.headers["Set-Cookie"]
    assert resp.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    assert (await client.get("/chat")).headers["Strict-Transport-Security"].startswith("max-age=")


async def test_init_on_a_new_database_prints_a_password_that_signs_in(ctx) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from hotline.app import create_app
    text = await run_hotline._init(ctx.config, "admin")
    password = re.search(r"\n\n    (\S+)\n\n", text)
    assert password is not None and len(password.group(1)) >= 20 and password.group(1) != DEMO_PASSWORD
    async with TestClient(TestServer(create_app(ctx))) as client:
        resp = await client.post("/api/auth/login", json={"username": "admin", "password": password.group(1)})
        assert resp.status == 200 and (await resp.json())["role"] == "admin"
    with pytest.raises(ValueError, match="an admin already exists"):
        await run_hotline._init(ctx.config, "admin2")


# ---- the sign-in throttle ----------------------------------------------------------------------------------


def test_a_barred_address_makes_no_counter_per_new_name_and_floods_do_not_wash_locks_away() -> None:
    clock = [0.0]
    throttle = LoginThrottle(max_entries=200, now=lambda: clock[0])
    victim_guesser = "198.51.100.9"
    for _ in range(5):
        throttle.begin("sup", victim_guesser)
    assert throttle.begin("sup", victim_guesser) > 0  # that pair is barred
    attacker = "203.0.113.7"
    for i in range(30):
        throttle.begin(f"name{i}", attacker)
    held = len(throttle)
    for i in range(50_000):  # the barred address tries fresh names: nothing is made for them
        assert throttle.begin(f"fresh{i}", attacker) > 0
    assert len(throttle) == held
    # Many addresses, each under its limit, fill the memory: unbarred counters go, the locks stay.
    for i in range(5_000):
        throttle.begin("x", f"10.{i // 250}.{i % 250}.1")
    assert len(throttle) <= 200
    assert throttle.begin("sup", victim_guesser) > 0 and throttle.begin("anyone", attacker) > 0
    clock[0] += 15 * 60 + 1
    assert throttle.begin("sup", victim_guesser) == 0.0  # locks end on time


async def test_behind_a_trusted_proxy_that_names_nobody_one_attacker_does_not_lock_everyone_out(
        client, ctx) -> None:
    auth_views._THROTTLES[client.app] = LoginThrottle(address_limit=3)
    ctx.config.http.trusted_proxies = "127.0.0.1"  # the test client is the proxy; it sends no X-Forwarded-For
    for i in range(4):
        resp = await client.post("/api/auth/login", json={"username": f"nobody{i}", "password": "guess"})
        assert resp.status == 401
    resp = await client.post("/api/auth/login", json={"username": "agent1", "password": PASSWORD})
    assert resp.status == 200  # the address is unknown: only names are counted
    # Named by the proxy, an address is counted and barred as usual; others behind the proxy are not.
    for i in range(3):
        await client.post("/api/auth/login", json={"username": f"n{i}", "password": "x"},
                          headers={"X-Forwarded-For": "203.0.113.7"})
    resp = await client.post("/api/auth/login", json={"username": "sup", "password": PASSWORD},
                             headers={"X-Forwarded-For": "203.0.113.7"})
    assert resp.status == 429
    resp = await client.post("/api/auth/login", json={"username": "sup", "password": PASSWORD},
                             headers={"X-Forwarded-For": "198.51.100.20"})
    assert resp.status == 200


async def test_an_untrusted_peer_cannot_pick_its_throttle_address(client, ctx) -> None:
    auth_views._THROTTLES[client.app] = LoginThrottle(address_limit=3)
    for i in range(3):  # default: no trusted proxies; every header names another address
        await client.post("/api/auth/login", json={"username": f"n{i}", "password": "x"},
                          headers={"X-Forwarded-For": f"203.0.113.{i}"})
    resp = await client.post("/api/auth/login", json={"username": "sup", "password": PASSWORD},
                             headers={"X-Forwarded-For": "198.51.100.20"})
    assert resp.status == 429  # all counted on the real peer


# ---- /metrics ----------------------------------------------------------------------------------------------


async def test_metrics_judge_the_real_peer_not_a_header(client, ctx) -> None:
    assert (await client.get("/metrics")).status == 200  # 127.0.0.1 is allowed by default
    # A proxy on this host that is not trusted: its requests carry forwarding headers and are refused.
    resp = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 403
    assert (await client.get("/metrics", headers={"X-Real-IP": "127.0.0.1"})).status == 403
    # A trusted proxy: the address it forwards for is judged.
    ctx.config.http.trusted_proxies = "127.0.0.1"
    ctx.config.metrics.allowed = "10.1.0.0/16"
    assert (await client.get("/metrics")).status == 403  # the proxy named nobody
    assert (await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})).status == 403
    assert (await client.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3, 203.0.113.9"})).status == 403
    resp = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9, 10.1.2.3"})
    assert resp.status == 200 and "hotline_" in await resp.text()
    ctx.config.metrics.token = "scrape-secret"
    resp = await client.get("/metrics", headers={"Authorization": "Bearer scrape-secret",
                                                  "X-Forwarded-For": "203.0.113.9"})
    assert resp.status == 200
    assert (await client.get("/metrics", headers={"Authorization": "Bearer 令牌"})).status == 403


# ---- tokens that are not ASCII -----------------------------------------------------------------------------


async def test_non_ascii_tokens_get_a_clean_json_401_or_403(client, ctx, caplog) -> None:
    resp = await client.get("/api/tickets", headers={"Authorization": "Bearer 令牌"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_token"
    resp = await client.get("/api/auth/me", cookies={"hotline_session": "会话"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthenticated"
    await login(client, "agent1")
    resp = await client.post("/api/auth/logout", headers={"X-CSRF-Token": "口令"})
    assert resp.status == 403 and (await resp.json())["error"]["code"] == "csrf"
    resp = await client.get("/survey/1.99999999999.签名")
    assert resp.status < 500
    assert "Traceback" not in caplog.text and "unhandled error" not in caplog.text


# ---- sessions and password hashes --------------------------------------------------------------------------


async def test_expired_sessions_are_purged_at_sign_in(client, ctx, staff, clock) -> None:
    now = clock()
    async with ctx.sessions.begin() as session:
        for i in range(3):
            session.add(StaffSession(token_hash=f"old{i}", staff_id=staff["sup"].id, csrf_token="x",
                                     created_at=now - dt.timedelta(days=3), expires_at=now - dt.timedelta(days=2)))
    await login(client, "agent1")
    async with ctx.readers() as session:
        hashes = (await session.execute(select(StaffSession.token_hash))).scalars().all()
    assert len(hashes) == 1 and not hashes[0].startswith("old")


async def test_an_old_cheap_hash_still_signs_in_and_is_hashed_again_with_todays_parameters(client, ctx) -> None:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(PASSWORD.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    old = f"scrypt${2**14}$8$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"
    async with ctx.sessions.begin() as session:
        member = (await session.execute(select(Staff).where(Staff.username == "sup"))).scalar_one()
        member.password_hash = old
    assert passwords.needs_rehash(old) and passwords.N == 2**17
    await login(client, "sup")
    async with ctx.readers() as session:
        stored = (await session.execute(select(Staff.password_hash).where(Staff.username == "sup"))).scalar_one()
    assert stored.startswith(f"scrypt${2**17}$8$1$") and not passwords.needs_rehash(stored)
    client.session.cookie_jar.clear()
    await login(client, "sup")  # the new hash verifies
    assert (await client.get("/api/auth/me")).status == 200
    assert (await client.get("/api/tickets", headers=SERVICE)).status == 200


def test_a_production_service_process_will_not_start_on_the_demo_database(tmp_path) -> None:
    import subprocess
    import sys

    from hotline.config import ROOT
    from tests.service_process import ServiceProcess
    svc = ServiceProcess(tmp_path / "var", "token-for-this-test", bot=False)
    svc.var.mkdir(parents=True)
    svc.run("seed-demo", "--accounts", "30")  # the demo, as scripts/run.sh makes it
    env = {**svc.env, "HOTLINE_SERVICE_ENVIRONMENT": "production"}
    done = subprocess.run([sys.executable, str(ROOT / "run_hotline.py"), "serve"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "still have the demo's public password" in done.stderr
    done = subprocess.run([sys.executable, str(ROOT / "run_hotline.py"), "seed-demo"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "seed-demo: refused" in done.stderr
