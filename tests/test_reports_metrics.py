"""/metrics (parsed by prometheus_client's own parser, access rules) and /commitments (public, nothing personal)."""
from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from hotline.actors import Actor
from hotline.app import create_app
from hotline.context import AppContext
from models import Customer
from tests.conftest import SERVICE

pytestmark = pytest.mark.asyncio


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def _scrape(client: TestClient, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = await client.get("/metrics", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    return _samples(await resp.text())


async def test_metrics_move_when_a_ticket_is_created(client: TestClient) -> None:
    before = await _scrape(client)
    key = ("hotline_tickets_created_total", (("category", "repair"), ("channel", "web")))
    assert before.get(key, 0) == 0
    resp = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "leak", "description": "漏水", "channel": "web"})
    assert resp.status == 201
    after = await _scrape(client)
    assert after[key] == 1
    requests = ("hotline_http_requests_total", (("method", "POST"), ("route", "/api/tickets"), ("status", "201")))
    assert after[requests] == 1
    assert ("hotline_http_request_duration_seconds_count", (("method", "POST"), ("route", "/api/tickets"))) in after
    assert after[("hotline_tickets_open_overdue", (("department", "network_repair"),))] == 0
    assert after[("hotline_queue_waiting", ())] == 0
    assert ("hotline_bot_failed_total", ()) in after
    assert ("hotline_db_pool_in_use", ()) in after
    # A 404 is counted under its route template, not under the ticket number asked for.
    await client.get("/api/tickets/GD20990101-0001", headers=SERVICE)
    again = await _scrape(client)
    assert again[("hotline_http_requests_total", (("method", "GET"), ("route", "/api/tickets/{number}"),
                                                  ("status", "404")))] == 1


@pytest_asyncio.fixture
async def locked_client(ctx: AppContext, staff: dict[str, Actor]) -> AsyncIterator[TestClient]:
    ctx.config.metrics.allowed = "10.0.0.0/8"  # not the test client's 127.0.0.1
    ctx.config.metrics.token = "scrape-secret"
    async with TestClient(TestServer(create_app(ctx))) as test_client:
        yield test_client


async def test_metrics_need_an_allowed_address_or_the_token(locked_client: TestClient) -> None:
    assert (await locked_client.get("/metrics")).status == 403
    assert (await locked_client.get("/metrics", headers={"Authorization": "Bearer wrong"})).status == 403
    assert (await locked_client.get("/metrics", headers=SERVICE)).status == 403  # the API's token is not it
    await _scrape(locked_client, Authorization="Bearer scrape-secret")


async def test_commitments_page_is_public_and_impersonal(client: TestClient, ctx: AppContext) -> None:
    async with ctx.sessions.begin() as session:
        session.add(Customer(account_number="3100009999", name="张三丰", address="幸福路99号", area="城区",
                             meter_model="LXS", meter_size_dn=20, meter_serial="S1"))
    resp = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "burst_main", "description": "爆管了", "channel": "phone",
        "account_number": "3100009999", "phone": "13912345678", "contact_name": "张三丰", "address": "幸福路99号"})
    assert resp.status == 201
    client.session.cookie_jar.clear()
    resp = await client.get("/commitments")
    assert resp.status == 200
    policy = resp.headers["Content-Security-Policy"]
    assert "script-src" not in policy and "default-src 'none'" in policy and "unsafe-inline" not in policy
    page = await resp.text()
    for promise in ("服务承诺", "爆管抢修", "30分钟内响应", "GB 5749-2022", "收费标准", "近30天", "本月", "满意率"):
        assert promise in page
    for personal in ("张三丰", "13912345678", "幸福路99号", "3100009999", "爆管了"):
        assert personal not in page
    assert "<script" not in page
    css = await client.get("/commitments/static/commitments.css")
    assert css.status == 200
