"""API hardening: security headers, deeply nested JSON, LIKE wildcards in searches, who may read
customers."""
from __future__ import annotations

import pytest

from models import Customer
from tests.conftest import SERVICE, login


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


@pytest.mark.xfail(strict=True, reason="hotline/customers/accounts.py search_customers still builds '%text%' "
                                       "without escaping (not this change's file); see the report")
async def test_percent_and_underscore_in_customer_search_are_literal(client, ctx) -> None:
    async with ctx.sessions.begin() as session:
        session.add_all([_customer("3100000001", "张三", "建设路1号"), _customer("3100000002", "李四", "建设路2号")])
    resp = await client.get("/api/customers", params={"q": "建设路"}, headers=SERVICE)
    assert len((await resp.json())["items"]) == 2
    for q in ("%", "_"):
        resp = await client.get("/api/customers", params={"q": q}, headers=SERVICE)
        assert resp.status == 200 and (await resp.json())["items"] == []


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
