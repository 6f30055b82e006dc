"""The read audit (查阅记录): every staff read of a resident's data is recorded before it is answered and
admins can ask who looked at whom; names are masked unless revealed for a reason; search needs two
characters or a whole number, and finds an account by its 户号 as well as by its phone."""
from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from sqlalchemy import select

from hotline.actors import SERVICE as SERVICE_ACTOR
from hotline.audit import reads
from hotline.conversations import service
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import TicketDraft
from models import Call, Conversation, Customer, CustomerPhone, ReadAudit
from tests.conftest import SERVICE, login

ACCOUNT, PHONE, NAME = "3100000011", "13900002222", "赵建国"


async def _resident(ctx) -> None:
    async with ctx.sessions.begin() as session:
        customer = Customer(account_number=ACCOUNT, name=NAME, address="定州市建设路8号", area="城东片区",
                            meter_model="LXS-20", meter_size_dn=20, meter_serial="M0011")
        session.add(customer)
        await session.flush()
        session.add(CustomerPhone(customer_id=customer.id, phone=PHONE))
        session.add(Customer(account_number="3100000099", name="赵六", address="定州市兴华路1号", area="城西片区",
                             meter_model="LXS-15", meter_size_dn=15, meter_serial="M0099"))


async def _conversation(ctx) -> int:
    """A web chat whose account the bot confirmed."""
    conv_id = (await service.receive(ctx, "web", "visitor-audit", "我家没水了", to_bot=False)).conversation_id
    async with ctx.sessions.begin() as session:
        conv = await session.get(Conversation, conv_id)
        conv.customer_id = (await session.execute(select(Customer.id).where(
            Customer.account_number == ACCOUNT))).scalar_one()
    return conv_id


async def _ticket(ctx, conv_id: int | None = None) -> str:
    async with ctx.sessions.begin() as session:
        draft = TicketDraft(category="repair", business_type="leak", description="楼道水管漏水", channel="web",
                            account_number=ACCOUNT, phone=PHONE, contact_name=NAME, conversation_id=conv_id)
        return (await lifecycle.create_ticket(session, ctx.router, draft, SERVICE_ACTOR, ctx.clock())).number


async def _call(ctx) -> int:
    recordings = ctx.config.var_dir / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    (recordings / "call-audit.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    async with ctx.sessions.begin() as session:
        call = Call(sip_call_id="audit-1", caller=PHONE, account_number=ACCOUNT, started_at=ctx.clock(),
                    recording_path="recordings/call-audit.wav")
        session.add(call)
        await session.flush()
        return call.id


async def _audit(client: TestClient, **params: str) -> list[dict[str, Any]]:
    resp = await client.get("/api/audit/reads", params=params)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["items"]


async def test_each_staff_read_of_a_resident_is_recorded_and_an_admin_finds_it_by_account_phone_staff_and_day(
        client: TestClient, ctx, clock, staff) -> None:
    await _resident(ctx)
    conv = await _conversation(ctx)
    number = await _ticket(ctx, conv)
    call_id = await _call(ctx)
    await login(client, "agent1")
    reads_made = [f"/api/customers/{ACCOUNT}", f"/api/customers/{ACCOUNT}/balance", "/api/customers?q=赵建",
                  f"/api/conversations/{conv}/context", f"/api/residents/context?phone={PHONE}",
                  f"/api/search?q={ACCOUNT}", f"/api/conversations/{conv}", "/api/calls",
                  f"/api/calls/{call_id}/recording", f"/api/tickets/{number}", f"/api/tickets?account={ACCOUNT}",
                  f"/api/conversations?q={ACCOUNT}"]
    for path in reads_made:
        assert (await client.get(path)).status == 200, path
    clock.advance(days=1)
    await login(client, "sup")
    assert (await client.get(f"/api/customers/{ACCOUNT}")).status == 200

    await login(client, "admin")
    by_account = await _audit(client, account=ACCOUNT)
    agent_rows = [r for r in by_account if r["staff"] == "agent1"]
    assert {r["endpoint"] for r in agent_rows} == {
        "GET /api/customers/{account_number}", "GET /api/customers/{account_number}/balance", "GET /api/customers",
        "GET /api/conversations/{id}/context", "GET /api/residents/context", "GET /api/search",
        "GET /api/conversations/{id}", "GET /api/calls", "GET /api/calls/{id}/recording",
        "GET /api/tickets/{number}", "GET /api/tickets", "GET /api/conversations"}
    assert all((r["role"], r["staff_name"], r["staff_id"]) == ("agent", "agent1", staff["agent1"].id)
               for r in agent_rows)
    panel = next(r for r in agent_rows if r["endpoint"] == "GET /api/conversations/{id}/context")
    assert panel["conversation_id"] == conv
    assert next(r for r in agent_rows if r["endpoint"] == "GET /api/calls/{id}/recording")["call_id"] == call_id
    assert next(r for r in agent_rows if r["endpoint"] == "GET /api/tickets/{number}")["ticket_number"] == number
    # The search by 户号 showed the account, its ticket, its conversation and its call: four hits, one row.
    assert next(r for r in agent_rows if r["endpoint"] == "GET /api/search")["hits"] == 4
    assert by_account[0]["staff"] == "sup" and by_account[0]["role"] == "supervisor"  # newest first
    # By phone (as typed by anyone: separators do not matter), by reader, and by day (Beijing time).
    by_phone = await _audit(client, phone="139-0000-2222")
    assert {r["endpoint"] for r in by_phone} == {"GET /api/residents/context"}
    assert {r["staff"] for r in await _audit(client, staff="sup")} == {"sup"}
    first_day = await _audit(client, account=ACCOUNT, **{"from": "2026-09-24", "to": "2026-09-24"})
    assert {r["staff"] for r in first_day} == {"agent1"} and len(first_day) == len(agent_rows)
    assert [r["staff"] for r in await _audit(client, account=ACCOUNT, **{"from": "2026-09-25"})] == ["sup"]
    # The other account in the store was never looked at.
    assert await _audit(client, account="3100000099") == []
    # Only admins read the audit.
    for who in ("sup", "agent1", "crew"):
        await login(client, who)
        assert (await client.get("/api/audit/reads")).status == 403, who


async def test_the_bots_reads_are_recorded_as_service_and_plain_work_lists_are_not(client: TestClient, ctx) -> None:
    await _resident(ctx)
    await _ticket(ctx)
    assert (await client.get(f"/api/customers/{ACCOUNT}/balance", headers=SERVICE)).status == 200
    await login(client, "agent1")
    assert (await client.get("/api/tickets?status=open")).status == 200  # the work queue, not a lookup
    await login(client, "admin")
    rows = await _audit(client, account=ACCOUNT)
    assert [(r["role"], r["staff"], r["endpoint"]) for r in rows] == [
        ("service", None, "GET /api/customers/{account_number}/balance")]


async def test_a_read_whose_record_cannot_be_written_is_refused_and_shows_nothing(
        client: TestClient, ctx, monkeypatch) -> None:
    await _resident(ctx)
    conv = await _conversation(ctx)
    await login(client, "agent1")

    def refused(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("audit store unavailable")

    monkeypatch.setattr(reads, "read_row", refused)
    for path in (f"/api/customers/{ACCOUNT}/balance", f"/api/conversations/{conv}/context"):
        resp = await client.get(path)
        assert resp.status == 500, path
        body = await resp.text()
        assert NAME[0] not in body and "balance" not in body and ACCOUNT not in body, path


async def test_names_are_masked_everywhere_and_revealed_only_for_a_recorded_reason(
        client: TestClient, ctx) -> None:
    await _resident(ctx)
    conv = await _conversation(ctx)
    for path in (f"/api/customers/{ACCOUNT}", f"/api/customers/{ACCOUNT}/balance"):
        assert (await (await client.get(path, headers=SERVICE)).json())["name"] == "赵**", path
    found = await (await client.get("/api/customers", params={"q": ACCOUNT}, headers=SERVICE)).json()
    assert [c["name"] for c in found["items"]] == ["赵**"]
    headers = await login(client, "agent1")
    assert (await (await client.get(f"/api/conversations/{conv}/context")).json())["customer"]["name"] == "赵**"
    no_reason = await client.post(f"/api/customers/{ACCOUNT}/reveal", json={}, headers=headers)
    assert no_reason.status == 422
    revealed = await client.post(f"/api/customers/{ACCOUNT}/reveal", json={"reason": "居民要求核对户名"},
                                 headers=headers)
    assert revealed.status == 200 and (await revealed.json())["name"] == NAME
    unknown = await client.post("/api/customers/3100009999/reveal", json={"reason": "核对"}, headers=headers)
    assert unknown.status == 404
    # Department staff never see a full name, nor does the bot's token.
    crew = await login(client, "crew")
    assert (await client.post(f"/api/customers/{ACCOUNT}/reveal", json={"reason": "上门"}, headers=crew)).status == 403
    client.session.cookie_jar.clear()
    assert (await client.post(f"/api/customers/{ACCOUNT}/reveal", json={"reason": "核对"},
                              headers=SERVICE)).status == 403
    await login(client, "admin")
    rows = await _audit(client, account=ACCOUNT)
    reveal = [r for r in rows if r["endpoint"] == "POST /api/customers/{account_number}/reveal"]
    assert [(r["staff"], r["reason"]) for r in reveal] == [("agent1", "居民要求核对户名")]


async def test_customer_search_needs_two_characters_or_a_whole_number(client: TestClient, ctx) -> None:
    await _resident(ctx)
    await login(client, "agent1")
    for path in ("/api/customers?q=赵", "/api/search?q=赵", "/api/search?q=%20赵%20"):
        resp = await client.get(path)
        assert resp.status == 422, path
        error = (await resp.json())["error"]
        assert error["code"] == "query_too_short" and "两个字" in error["message"], path
    names = await (await client.get("/api/customers", params={"q": "赵建"})).json()
    assert [c["account_number"] for c in names["items"]] == [ACCOUNT]
    both = await (await client.get("/api/customers", params={"q": "定州市"})).json()  # an address, two accounts
    assert [c["account_number"] for c in both["items"]] == [ACCOUNT, "3100000099"]
    # Digits are a whole 户号 or phone, never part of one.
    assert (await (await client.get("/api/customers", params={"q": "31000000"})).json())["items"] == []
    for q in (ACCOUNT, PHONE, "139 0000 2222"):
        found = await (await client.get("/api/customers", params={"q": q})).json()
        assert [c["account_number"] for c in found["items"]] == [ACCOUNT], q
    assert (await (await client.get("/api/search", params={"q": "3100"})).json())["accounts"] == []


async def test_the_search_box_finds_an_account_by_its_number_as_well_as_by_its_phone(
        client: TestClient, ctx) -> None:
    await _resident(ctx)
    conv = await _conversation(ctx)
    number = await _ticket(ctx, conv)
    await login(client, "agent1")
    for q in (ACCOUNT, PHONE):
        data = await (await client.get("/api/search", params={"q": q})).json()
        assert [(a["account_number"], a["name"]) for a in data["accounts"]] == [(ACCOUNT, "赵**")], q
        assert [t["number"] for t in data["tickets"]] == [number], q
        assert [c["id"] for c in data["conversations"]] == [conv], q
    assert (await client.get("/api/customers", params={"q": PHONE})).status == 200
    # Looked up by phone: the admin asking about that phone finds both lookups, naming the account.
    await login(client, "admin")
    by_phone = await _audit(client, phone=PHONE)
    assert sorted((r["endpoint"], r["account_number"]) for r in by_phone) == [
        ("GET /api/customers", ACCOUNT), ("GET /api/search", ACCOUNT)]
    assert next(r for r in by_phone if r["endpoint"] == "GET /api/search")["hits"] == 3  # account, ticket, chat


async def test_audit_rows_written_in_the_callers_transaction_commit_with_it(ctx, staff) -> None:
    """record_read is what an export (and anything else that writes) calls inside its own transaction."""
    async with ctx.sessions.begin() as session:
        row = reads.record_read(session, staff["admin"], "CLI resident export", account_number=ACCOUNT,
                                phone="139-0000-2222", hits=3, at=ctx.clock())
    async with ctx.readers() as session:
        stored = await session.get(ReadAudit, row.id)
    assert (stored.role, stored.staff_id, stored.phone, stored.hits) == ("admin", staff["admin"].id, PHONE, 3)
    assert stored.at == ctx.clock()


async def test_the_audit_and_the_reveal_are_in_the_openapi_description(client: TestClient) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    audit = doc["paths"]["/api/audit/reads"]["get"]
    assert {p["name"] for p in audit["parameters"]} >= {"account", "phone", "staff", "from", "to"}
    assert "403" in audit["responses"] and "admins" in audit["summary"]
    reveal = doc["paths"]["/api/customers/{account_number}/reveal"]["post"]
    assert reveal["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/RevealBody")
