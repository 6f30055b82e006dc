"""API hardening: security headers, deeply nested JSON, LIKE wildcards in searches, who may read
customers, and sign-in throttling that reveals no names and locks nobody out."""
from __future__ import annotations

from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from hotline.api import auth_views
from hotline.api.client_address import client_address, resolve
from hotline.auth import sessions as staff_sessions
from hotline.auth.throttle import LoginThrottle, address_key
from models import Customer
from tests.conftest import PASSWORD, SERVICE, login

LOCKED = {"error": {"code": "locked", "message": "登录尝试次数过多，请15分钟后再试"}}


async def _create(client, description: str, **kw):
    body = {"category": "inquiry", "description": description, "channel": "counter"} | kw
    resp = await client.post("/api/tickets", json=body, headers=SERVICE)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["number"]


def _customer(account_number: str, name: str, address: str) -> Customer:
    return Customer(account_number=account_number, name=name, address=address, area="城西片区",
                    meter_model="LXS-20E", meter_size_dn=20, meter_serial=f"M{account_number}")


async def test_every_response_says_nosniff_and_staff_pages_refuse_framing(client) -> None:
    for path, headers, status in [("/api/tickets", SERVICE, 200), ("/api/tickets", {}, 401),
                                  ("/api/tickets/GD20990101-0001", SERVICE, 404), ("/api/openapi.json", {}, 200),
                                  ("/console", {}, 200), ("/healthz", {}, 200), ("/chat", {}, 200),
                                  ("/no/such/page", {}, 404)]:
        resp = await client.get(path, headers=headers, allow_redirects=False)
        assert resp.status == status, path
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        if path.startswith(("/api/", "/console")):
            assert resp.headers["X-Frame-Options"] == "DENY", path
            # A page that sets a stricter policy itself (the console: no-referrer) keeps it.
            assert resp.headers["Referrer-Policy"] in {"same-origin", "no-referrer"}, path


async def test_json_nested_deeper_than_the_parser_goes_is_a_clear_400(client) -> None:
    for depth in (100_000, 5_000):
        resp = await client.post("/api/tickets", data=b"[" * depth + b"]" * depth, headers=SERVICE)
        assert resp.status == 400
        assert (await resp.json())["error"] == {"code": "invalid_json",
                                                "message": "the request body is nested too deeply"}
        nested = b'{"description": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}"
        resp = await client.post("/api/tickets", data=nested, headers=SERVICE)
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"
    resp = await client.post("/api/auth/login", data=b"[" * 100_000, headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert (await client.get("/healthz")).status == 200


async def test_percent_and_underscore_in_q_are_literal_characters(client) -> None:
    plain = await _create(client, "水费怎么交")
    percent = await _create(client, "水费上涨了20%是真的吗")
    underscore = await _create(client, "户号输成了3100_0042")
    backslash = await _create(client, "地址写的是C:\\路/3号")

    async def found(q: str) -> set[str]:
        resp = await client.get("/api/tickets", params={"q": q}, headers=SERVICE)
        assert resp.status == 200, await resp.text()
        return {t["number"] for t in (await resp.json())["items"]}

    assert await found("%") == {percent}
    assert await found("_") == {underscore}
    assert await found("20%") == {percent}
    assert await found("%是") == {percent}
    assert await found("3100_") == {underscore}
    assert await found("\\") == {backslash}
    assert await found("/") == {backslash}
    assert await found("水费") == {plain, percent}
    assert await found("%%") == set()


async def test_percent_and_underscore_in_customer_search_are_literal(client, ctx) -> None:
    async with ctx.sessions.begin() as session:
        session.add_all([_customer("3100000001", "张三", "建设路1号"), _customer("3100000002", "李四", "建设路2号")])
    resp = await client.get("/api/customers", params={"q": "建设路"}, headers=SERVICE)
    assert len((await resp.json())["items"]) == 2
    # Two characters at least (one alone is refused); as wildcards "%号" and "路_" would match both.
    for q in ("%号", "路_", "_五"):
        resp = await client.get("/api/customers", params={"q": q}, headers=SERVICE)
        assert resp.status == 200 and (await resp.json())["items"] == []
    async with ctx.sessions.begin() as session:
        session.add(_customer("3100000003", "王_五", "建设路100%号"))
    for q in ("%号", "_五"):
        resp = await client.get("/api/customers", params={"q": q}, headers=SERVICE)
        assert [c["account_number"] for c in (await resp.json())["items"]] == ["3100000003"]


async def test_department_staff_may_not_read_customers(client, ctx) -> None:
    async with ctx.sessions.begin() as session:
        session.add(_customer("3100000042", "李娜", "兴华路2号"))
    number = await _create(client, "楼道漏水", category="repair", business_type="leak",
                           account_number="3100000042", contact_name="李娜", address="兴华路2号")
    await login(client, "crew")  # network_repair: the leak is their ticket
    for path in ["/api/customers/3100000042", "/api/customers/3100000042/balance", "/api/customers?q=李娜",
                 "/api/customers/3100009999"]:
        resp = await client.get(path)
        assert resp.status == 403, path
        assert (await resp.json())["error"]["code"] == "forbidden"
    # What they need of the resident is on their own ticket's page.
    ticket = await (await client.get(f"/api/tickets/{number}")).json()
    assert (ticket["account_number"], ticket["contact_name"], ticket["address"]) == ("3100000042", "李娜",
                                                                                   "兴华路2号")
    assert (await client.get("/api/outages")).status == 200  # outage notices are public
    for who in ("agent1", "sup", "admin"):
        client.session.cookie_jar.clear()
        await login(client, who)
        assert (await client.get("/api/customers/3100000042/balance")).status == 200, who
    client.session.cookie_jar.clear()
    assert (await client.get("/api/customers/3100000042", headers=SERVICE)).status == 200


def _from(address: str) -> dict[str, str]:
    """A request that came through the reverse proxy on this host from `address` (see _behind_proxy)."""
    return {"X-Forwarded-For": address}


@pytest.fixture
def _behind_proxy(ctx) -> None:
    """The test client's 127.0.0.1 is a reverse proxy the service trusts ([http] trusted_proxies)."""
    ctx.config.http.trusted_proxies = "127.0.0.1,::1"


async def _sign_in(client, username: str, password: str, address: str):
    resp = await client.post("/api/auth/login", json={"username": username, "password": password},
                             headers=_from(address))
    return resp.status, await resp.json(), resp.headers.get("Retry-After")


async def test_lockout_answers_the_same_for_unknown_and_known_names(client, monkeypatch, _behind_proxy) -> None:
    # The throttle's clock stands still: Retry-After then compares exactly, however long each KDF run takes.
    auth_views._THROTTLES[client.app] = LoginThrottle(now=lambda: 1000.0)
    kdf_runs: list[str] = []
    real_verify = staff_sessions.verify_password

    async def counting_verify(password: str, stored: str) -> bool:
        kdf_runs.append("dummy" if stored == staff_sessions.DUMMY_HASH else "real")
        return await real_verify(password, stored)

    monkeypatch.setattr(staff_sessions, "verify_password", counting_verify)
    attacker = "203.0.113.7"
    answers = {}
    for name in ("sup", "no.such.person"):
        answers[name] = [await _sign_in(client, name, "guess", attacker) for _ in range(5)]
        answers[name].append(await _sign_in(client, name, PASSWORD, attacker))
    known, unknown = answers["sup"], answers["no.such.person"]
    assert known == unknown  # status, body and Retry-After, attempt by attempt
    assert [status for status, _, _ in known] == [401] * 5 + [429]
    assert known[0][1] == {"error": {"code": "bad_credentials", "message": "用户名或密码错误"}}
    assert known[5][1] == LOCKED and int(known[5][2]) == 15 * 60
    # The password KDF ran for every counted attempt, on the dummy hash for the unknown name.
    assert kdf_runs == ["real"] * 5 + ["dummy"] * 5


async def test_a_lockout_slows_the_attacker_not_the_staff_member(client, _behind_proxy) -> None:
    attacker, office = "203.0.113.7", "198.51.100.20"
    for _ in range(5):
        assert (await _sign_in(client, "sup", "guess", attacker))[0] == 401
    assert (await _sign_in(client, "sup", PASSWORD, attacker))[0] == 429
    assert (await _sign_in(client, "sup", PASSWORD, office))[0] == 200
    # Spreading guesses over many names: the address is stopped after thirty, every name alike.
    spray = "192.0.2.50"
    statuses = [(await _sign_in(client, f"user{i}", "guess", spray))[0] for i in range(31)]
    assert statuses == [401] * 30 + [429]
    assert (await _sign_in(client, "agent1", PASSWORD, spray))[0] == 429
    assert (await _sign_in(client, "agent1", PASSWORD, office))[0] == 200


def test_only_a_trusted_proxy_may_say_who_it_forwards_for() -> None:
    def request(peer: str, forwarded: str | None):
        transport = mock.Mock()
        transport.get_extra_info.side_effect = lambda name, default=None: (peer, 40000) if name == "peername" \
            else default
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        return make_mocked_request("POST", "/api/auth/login", headers=headers, transport=transport)

    trusted = "127.0.0.1, ::1, 10.0.0.0/8"
    # What the proxy saw: the right-most entry that is not one of our proxies; the client's own entries are not.
    assert client_address(request("127.0.0.1", "10.9.9.9, 203.0.113.7"), trusted) == "203.0.113.7"
    assert client_address(request("127.0.0.1", "198.51.100.66, 203.0.113.7, 10.0.0.2"), trusted) == "203.0.113.7"
    assert client_address(request("::1", "2001:db8::5"), trusted) == "2001:db8::5"
    assert resolve(request("127.0.0.1", "not an address"), trusted) == ("127.0.0.1", False)
    assert resolve(request("127.0.0.1", None), trusted) == ("127.0.0.1", False)  # a proxy that names nobody
    assert client_address(request("198.51.100.3", "203.0.113.7"), trusted) == "198.51.100.3"  # anyone could
    assert client_address(request("198.51.100.3", None), trusted) == "198.51.100.3"
    # No trusted proxies (the default): even a peer on this host is only itself.
    assert resolve(request("127.0.0.1", "203.0.113.7"), "") == ("127.0.0.1", True)


async def test_successful_sign_ins_do_not_use_up_an_offices_address(client, _behind_proxy) -> None:
    office = "198.51.100.20"
    for _ in range(40):
        assert (await _sign_in(client, "agent1", PASSWORD, office))[0] == 200


def test_throttle_counts_parallel_attempts_and_forgets_after_the_lockout() -> None:
    clock = [0.0]
    throttle = LoginThrottle(now=lambda: clock[0])
    # Five attempts begun at once (none finished yet) use up the pair: the sixth waits.
    assert [throttle.begin("Sup", "203.0.113.7") for _ in range(5)] == [0.0] * 5
    assert throttle.begin("sup ", "203.0.113.7") == 15 * 60  # names count case- and space-insensitively
    assert throttle.begin("sup", "203.0.113.8") == 0.0
    clock[0] += 15 * 60 + 1
    assert throttle.begin("sup", "203.0.113.7") == 0.0
    assert address_key("2001:db8:1:2:3:4:5:6") == address_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert address_key("::ffff:203.0.113.7") == "203.0.113.7"
    bounded = LoginThrottle(max_entries=10)
    for i in range(100):
        bounded.begin(f"name{i}", "192.0.2.1")
    assert len(bounded._counters) <= 10
