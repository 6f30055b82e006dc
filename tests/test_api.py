"""The HTTP API as the bot, the console and other services use it."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from models import Customer, CustomerPhone, Outage, Ticket
from models.customer import Bill, Payment
from tests.conftest import SERVICE, login


async def _create(client, **kw):
    body = {"category": "repair", "description": "家里没水了", "channel": "wechat"} | kw
    return await client.post("/api/tickets", json=body, headers=SERVICE)


async def test_create_answers_201_with_number_department_and_due_times(client) -> None:
    resp = await _create(client, business_type="no_water", phone="13912345678", address="中山东路8号")
    assert resp.status == 201
    data = await resp.json()
    assert data["number"].startswith("GD20260924-")
    assert data["department"] == "network_repair" and data["department_name"] == "管网抢修中心"
    assert data["status"] == "new" and data["status_label"] == "待派单"
    assert data["priority"] == "urgent"
    assert data["response_due_at"] and data["resolution_due_at"]
    assert data["events"][0]["action"] == "create"

    got = await client.get(f"/api/tickets/{data['number']}", headers=SERVICE)
    assert (await got.json())["address"] == "中山东路8号"


async def test_errors_are_clear_and_write_nothing(client, ctx) -> None:
    resp = await client.post("/api/tickets", data=b"{not json", headers=SERVICE)
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "invalid_json"
    resp = await client.post("/api/tickets", json=["a"], headers=SERVICE)
    assert resp.status == 400
    resp = await client.post("/api/tickets", json={"category": "repair"}, headers=SERVICE)
    body = await resp.json()
    assert resp.status == 422
    assert {d["field"] for d in body["error"]["details"]} == {"description", "channel"}
    resp = await _create(client, account_number="0000")
    assert resp.status == 422 and "unknown account number" in (await resp.json())["error"]["message"]
    resp = await _create(client, business_type="invoice")
    assert resp.status == 422 and "belongs to category 'billing'" in (await resp.json())["error"]["message"]
    resp = await _create(client, surprise="field")
    assert resp.status == 422
    resp = await client.get("/api/tickets/GD20990101-0001", headers=SERVICE)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    async with ctx.readers() as session:
        assert (await session.execute(select(func.count()).select_from(Ticket))).scalar_one() == 0


async def test_authentication_is_required_and_checked(client) -> None:
    assert (await client.get("/api/tickets")).status == 401
    resp = await client.get("/api/tickets", headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_token"
    resp = await client.post("/api/auth/login", json={"username": "agent1", "password": "nope"})
    assert resp.status == 401 and (await resp.json())["error"]["message"] == "用户名或密码错误"


async def test_session_cookie_with_csrf_protection(client) -> None:
    headers = await login(client, "agent1")
    me = await client.get("/api/auth/me")
    assert (await me.json())["role"] == "agent"
    body = {"category": "inquiry", "description": "怎么办理过户", "channel": "counter"}
    refused = await client.post("/api/tickets", json=body)  # no CSRF header
    assert refused.status == 403 and (await refused.json())["error"]["code"] == "csrf"
    created = await client.post("/api/tickets", json=body, headers=headers)
    assert created.status == 201
    await client.post("/api/auth/logout", headers=headers)
    assert (await client.get("/api/auth/me")).status == 401


async def test_repeated_failures_from_one_address_are_refused_for_a_while(client) -> None:
    for _ in range(5):
        await client.post("/api/auth/login", json={"username": "sup", "password": "wrong password"})
    resp = await client.post("/api/auth/login", json={"username": "sup", "password": "correct horse battery"})
    assert resp.status == 429 and (await resp.json())["error"]["code"] == "locked"


async def test_lifecycle_over_http_with_roles(client) -> None:
    number = (await (await _create(client, business_type="leak")).json())["number"]
    sup = await login(client, "sun.repair")
    resp = await client.post(f"/api/tickets/{number}/assign", json={"assignee": "crew"}, headers=sup)
    assert resp.status == 200 and (await resp.json())["assignee"] == "crew"
    resp = await client.post(f"/api/tickets/{number}/resolve", json={"note": "修好了"}, headers=sup)
    assert resp.status == 409 and "needs one of in_progress" in (await resp.json())["error"]["message"]

    crew = await login(client, "crew")
    assert (await client.post(f"/api/tickets/{number}/start", json={}, headers=crew)).status == 200
    assert (await client.post(f"/api/tickets/{number}/resolve", json={"note": "更换阀门"}, headers=crew)).status == 200
    # The crew may not close the loop themselves: the callback is the hotline's.
    resp = await client.post(f"/api/tickets/{number}/callback", json={"reached": True, "satisfaction": 5},
                             headers=crew)
    assert resp.status == 403
    resp = await client.post(f"/api/tickets/{number}/callback", json={"reached": True, "satisfaction": 9},
                             headers=SERVICE)
    assert resp.status == 422
    resp = await client.post(f"/api/tickets/{number}/callback", json={"reached": True, "satisfaction": 4},
                             headers=SERVICE)
    assert resp.status == 200 and (await resp.json())["status"] == "callback"
    resp = await client.post(f"/api/tickets/{number}/comments", json={"note": "居民很满意"}, headers=SERVICE)
    events = [e["action"] for e in (await resp.json())["events"]]
    assert events == ["create", "assign", "start", "resolve", "callback", "comment"]


async def test_list_filters(client, clock) -> None:
    await _create(client, business_type="leak", phone="13900000001", description="三号楼漏水")
    await _create(client, category="billing", description="查询水费")
    await _create(client, category="complaint", description="抢修太慢")
    clock.advance(days=6)  # Wednesday 30 September; the billing query was due on the 29th

    async def numbers(query: str) -> list[str]:
        resp = await client.get(f"/api/tickets?{query}", headers=SERVICE)
        assert resp.status == 200, await resp.text()
        return [t["description"] for t in (await resp.json())["items"]]

    assert await numbers("category=billing") == ["查询水费"]
    assert await numbers("department=network_repair") == ["三号楼漏水"]
    assert await numbers("q=三号楼") == ["三号楼漏水"]
    assert await numbers("phone=139-0000-0001") == ["三号楼漏水"]
    assert set(await numbers("overdue=true")) == {"三号楼漏水", "查询水费"}  # the complaint has 5 working days
    assert await numbers("overdue=false") == ["抢修太慢"]
    assert len(await numbers("status=open")) == 3
    page = await (await client.get("/api/tickets?limit=2", headers=SERVICE)).json()
    assert len(page["items"]) == 2 and page["next_before_id"]
    rest = await numbers(f"limit=2&before_id={page['next_before_id']}")
    assert rest == ["三号楼漏水"]
    bad = await client.get("/api/tickets?status=sleeping", headers=SERVICE)
    assert bad.status == 422
    bad = await client.get("/api/tickets?department=moon", headers=SERVICE)
    assert bad.status == 422


async def test_department_staff_see_only_their_department(client) -> None:
    mine = (await (await _create(client, business_type="leak")).json())["number"]
    other = (await (await _create(client, category="billing", description="发票")).json())["number"]
    await login(client, "crew")
    listed = [t["number"] for t in (await (await client.get("/api/tickets")).json())["items"]]
    assert listed == [mine]
    assert (await client.get(f"/api/tickets/{other}")).status == 404


async def test_customer_lookup_balance_and_arrears(client, ctx, clock) -> None:
    async with ctx.sessions.begin() as session:
        customer = Customer(account_number="3100000042", name="李娜", address="定州市兴华路2号", area="城西片区",
                            meter_model="LXS-20E", meter_size_dn=20, meter_serial="M42",
                            phones=[CustomerPhone(phone="13711112222")])
        session.add(customer)
        await session.flush()
        session.add_all([
            Bill(customer_id=customer.id, period="2026-07", reading_previous=100, reading_current=110,
                 volume_m3=10, amount_fen=3350, late_fee_fen=120, paid_fen=0,
                 issued_on=dt.date(2026, 8, 4), due_on=dt.date(2026, 8, 25)),
            Bill(customer_id=customer.id, period="2026-08", reading_previous=110, reading_current=118,
                 volume_m3=8, amount_fen=2680, paid_fen=2680,
                 issued_on=dt.date(2026, 9, 4), due_on=dt.date(2026, 9, 25)),
            Payment(customer_id=customer.id, amount_fen=2680, paid_at=clock(), method="wechat"),
            Payment(customer_id=customer.id, amount_fen=1000, paid_at=clock(), method="counter"),
            Outage(area="城西片区", title="兴华路停水", starts_at=clock(), ends_at=clock() + dt.timedelta(hours=5)),
        ])
    resp = await client.get("/api/customers/3100000042/balance", headers=SERVICE)
    data = await resp.json()
    assert data["arrears"] == "34.70" and data["overdue_bills"] == 1  # July bill plus its late fee
    assert data["outstanding"] == "0.00" and data["balance"] == "10.00"  # 10 yuan paid in advance
    assert [b["period"] for b in data["bills"]] == ["2026-08", "2026-07"]
    found = await (await client.get("/api/customers?phone=137-1111-2222", headers=SERVICE)).json()
    assert [c["account_number"] for c in found["items"]] == ["3100000042"]
    assert (await client.get("/api/customers/404", headers=SERVICE)).status == 404
    assert (await client.get("/api/customers", headers=SERVICE)).status == 422
    outages = await (await client.get("/api/outages?area=城西片区", headers=SERVICE)).json()
    assert [o["title"] for o in outages["items"]] == ["兴华路停水"]


async def test_openapi_describes_every_route(client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    for path, method in [("/api/tickets", "post"), ("/api/tickets", "get"), ("/api/tickets/{number}/assign", "post"),
                         ("/api/customers/{account_number}/balance", "get"), ("/api/conversations", "get"),
                         ("/api/calls", "get")]:
        assert method in doc["paths"][path]
    create = doc["components"]["schemas"]["TicketCreate"]
    assert set(create["required"]) == {"category", "description", "channel"}


async def test_healthz_names_each_component(client) -> None:
    resp = await client.get("/healthz")
    data = await resp.json()
    assert resp.status == 200
    assert set(data["components"]) >= {"database", "bot", "sip"}
    assert data["components"]["database"]["up"] is True


async def test_notifications_reach_the_supervisor(client, ctx) -> None:
    from hotline.tickets.escalation import sweep
    from tests.conftest import local
    number = (await (await _create(client, business_type="leak")).json())["number"]
    await sweep(ctx.sessions, ctx.router, local(2026, 9, 26, 9, 0))
    headers = await login(client, "sun.repair")
    items = (await (await client.get("/api/notifications")).json())["items"]
    assert {i["kind"] for i in items} == {"response_overdue", "on_site_overdue", "warning", "overdue"}
    assert all(i["ticket"] == number for i in items)
    assert "已超过办理时限" in next(i["message"] for i in items if i["kind"] == "overdue")
    resp = await client.post(f"/api/notifications/{items[0]['id']}/read", headers=headers)
    assert resp.status == 200
    assert len((await (await client.get("/api/notifications")).json())["items"]) == 3
