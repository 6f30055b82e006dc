"""Disclosure by verification: what a resident who names an account through the bot's door is told.

An unverified resident gets at most the masked name and the amount due, and only for a few different
accounts an hour; a proof (the phone's last four digits, the holder's name) opens the full statement and the
account's tickets for the rest of the conversation; wrong proofs are limited per account and per resident.
"""
from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hotline.conversations import service
from models import Bill, Customer, CustomerPhone
from tests.conftest import SERVICE

pytestmark = pytest.mark.asyncio

ACCOUNT = "2100000001"
PRIVATE_WORDS = ("bills", "balance", "reading_current", "reading_previous", "volume_m3", "address", "phones",
                 "arrears", "overdue_bills")


async def _customer(ctx, account: str, name: str = "张建国", phone: str = "13812345678") -> None:
    async with ctx.sessions.begin() as session:
        customer = Customer(account_number=account, name=name, address="幸福路12号3单元501", area="城东片区",
                            meter_model="LXS-20E", meter_size_dn=20, meter_serial=f"M{account}")
        session.add(customer)
        await session.flush()
        session.add(CustomerPhone(customer_id=customer.id, phone=phone))
        for period, previous, current, due in (("2026-07", 1200, 1218, dt.date(2026, 8, 20)),
                                               ("2026-08", 1218, 1240, dt.date(2026, 9, 30))):
            session.add(Bill(customer_id=customer.id, period=period, reading_previous=previous,
                             reading_current=current, volume_m3=current - previous,
                             amount_fen=(current - previous) * 350, issued_on=due - dt.timedelta(days=20),
                             due_on=due))


async def _statement(client, conversation_id: int, account: str = ACCOUNT):
    return await client.get("/api/residents/statement", headers=SERVICE,
                            params={"conversation_id": str(conversation_id), "account_number": account})


async def _verify(client, conversation_id: int, proof: str, account: str = ACCOUNT):
    return await client.post("/api/residents/verify", headers=SERVICE, json={
        "conversation_id": conversation_id, "account_number": account, "proof": proof})


async def _ticket(client, account: str = ACCOUNT) -> str:
    resp = await client.post("/api/tickets", headers=SERVICE, json={
        "category": "repair", "business_type": "meter_fault", "description": "水表不走了", "channel": "phone",
        "phone": "13812345678", "account_number": account})
    assert resp.status == 201, await resp.text()
    return str((await resp.json())["number"])


async def test_an_anonymous_web_chat_resident_gets_the_amount_due_and_the_owner_gets_everything(client, ctx) -> None:
    await _customer(ctx, ACCOUNT)
    number = await _ticket(client)
    web = await service.receive(ctx, "web", "anonymous-visitor-1", f"查水费 {ACCOUNT}", to_bot=False)

    anonymous = await _statement(client, web.conversation_id)
    assert anonymous.status == 200, await anonymous.text()
    seen = await anonymous.json()
    # 2026-07 is past due (18 t) and 2026-08 (22 t) not yet: 40 t × 3.50 owed, the name masked.
    assert seen["name"] == "张**" and seen["amount_due"] == "140.00" and seen["verified"] is False
    assert not any(word in seen for word in PRIVATE_WORDS)
    assert "1240" not in await anonymous.text() and "幸福路" not in await anonymous.text()
    hidden = await client.get("/api/residents/tickets", headers=SERVICE,
                              params={"conversation_id": str(web.conversation_id), "account_number": ACCOUNT})
    assert hidden.status == 403 and number not in await hidden.text()

    wrong = await _verify(client, web.conversation_id, "0000")
    assert wrong.status == 422 and "对不上" in (await wrong.json())["error"]["message"]
    proven = await _verify(client, web.conversation_id, "5678")
    assert proven.status == 200 and (await proven.json())["verified_by"] == "phone_digits"

    full = await (await _statement(client, web.conversation_id)).json()
    assert full["verified"] is True and full["arrears"] == "63.00" and full["outstanding"] == "77.00"
    assert [(b["period"], b["volume_m3"], b["reading_current"]) for b in full["bills"]] == [
        ("2026-08", 22, 1240), ("2026-07", 18, 1218)]
    tickets = await (await client.get("/api/residents/tickets", headers=SERVICE, params={
        "conversation_id": str(web.conversation_id), "account_number": ACCOUNT})).json()
    assert [t["number"] for t in tickets["items"]] == [number] and tickets["items"][0]["status_label"]

    # Another visitor, another conversation: not verified by someone else's proof.
    other = await service.receive(ctx, "web", "anonymous-visitor-2", ACCOUNT, to_bot=False)
    assert (await (await _statement(client, other.conversation_id)).json())["verified"] is False


async def test_the_holder_name_proves_and_a_bound_wechat_user_is_verified(client, ctx) -> None:
    await _customer(ctx, ACCOUNT)
    wechat = await service.receive(ctx, "wechat", "openid-zhang", "查水费", to_bot=False)
    assert (await (await _statement(client, wechat.conversation_id)).json())["verified"] is False
    bound = await client.post("/api/bindings", headers=SERVICE, json={
        "conversation_id": wechat.conversation_id, "account_number": ACCOUNT, "proof": "张建国"})
    assert bound.status == 200
    assert (await (await _statement(client, wechat.conversation_id)).json())["bills"]

    web = await service.receive(ctx, "web", "anonymous-visitor-3", "查水费", to_bot=False)
    assert (await (await _verify(client, web.conversation_id, "张建国")).json())["verified_by"] == "holder_name"


async def test_wrong_proofs_for_one_account_from_different_residents_are_refused_after_the_limit(
        client, ctx, clock) -> None:
    await _customer(ctx, ACCOUNT)
    for i, proof in enumerate(("0000", "1111", "2222", "3333", "4444")):
        visitor = await service.receive(ctx, "web", f"guessing-visitor-{i}", "查水费", to_bot=False)
        assert (await _verify(client, visitor.conversation_id, proof)).status == 422
    sixth = await service.receive(ctx, "web", "guessing-visitor-6", "查水费", to_bot=False)
    refused = await _verify(client, sixth.conversation_id, "5678")
    assert refused.status == 429 and "次数过多" in (await refused.json())["error"]["message"]
    wechat = await service.receive(ctx, "wechat", "openid-guess", "绑定户号", to_bot=False)
    binding = await client.post("/api/bindings", headers=SERVICE, json={
        "conversation_id": wechat.conversation_id, "account_number": ACCOUNT, "proof": "5678"})
    assert binding.status == 429  # binding counts the same tries against the account
    clock.advance(hours=1, minutes=1)
    assert (await _verify(client, sixth.conversation_id, "5678")).status == 200


async def test_a_sixth_different_account_in_an_hour_is_refused_and_counted_in_metrics(client, ctx, clock) -> None:
    for i in range(6):
        await _customer(ctx, f"21000000{i + 10}", phone=f"1381234{i:04d}")
    web = await service.receive(ctx, "web", "walking-visitor", "查水费", to_bot=False)
    for i in range(5):
        assert (await _statement(client, web.conversation_id, f"21000000{i + 10}")).status == 200
    again = await _statement(client, web.conversation_id, "2100000010")
    assert again.status == 200  # asking again about an account already asked about costs nothing
    sixth = await _statement(client, web.conversation_id, "2100000015")
    assert sixth.status == 429 and "查询次数过多" in (await sixth.json())["error"]["message"]
    unknown = await _statement(client, web.conversation_id, "2199999999")
    assert unknown.status == 429  # made-up numbers are refused alike: nothing tells which exist

    metrics = await (await client.get("/metrics")).text()
    refusals = {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(metrics)
                for s in f.samples if s.name == "hotline_resident_refusals_total"}
    assert refusals[(("channel", "web"), ("reason", "lookups"))] == 2

    clock.advance(hours=1, minutes=1)
    assert (await _statement(client, web.conversation_id, "2100000015")).status == 200


async def test_unknown_accounts_count_and_verified_look_ups_do_not(client, ctx) -> None:
    await _customer(ctx, ACCOUNT)
    web = await service.receive(ctx, "web", "careful-visitor", "查水费", to_bot=False)
    assert (await _verify(client, web.conversation_id, "5678")).status == 200
    for i in range(5):
        assert (await _statement(client, web.conversation_id, f"299999999{i}")).status == 404
    assert (await _statement(client, web.conversation_id, "2999999995")).status == 429
    assert (await _statement(client, web.conversation_id)).status == 200  # the proven account is still answered


async def test_anonymous_disclosure_none_discloses_nothing(client, ctx) -> None:
    ctx.config.privacy.anonymous_disclosure = "none"
    await _customer(ctx, ACCOUNT)
    web = await service.receive(ctx, "web", "anonymous-visitor-4", ACCOUNT, to_bot=False)
    seen = await (await _statement(client, web.conversation_id)).json()
    assert seen == {"account_number": ACCOUNT, "disclosure": "none", "verified": False, "verified_by": None}
    assert (await _verify(client, web.conversation_id, "5678")).status == 200
    assert (await (await _statement(client, web.conversation_id)).json())["bills"]


async def test_the_residents_door_is_for_the_service_only_and_described(client, ctx) -> None:
    await _customer(ctx, ACCOUNT)
    web = await service.receive(ctx, "web", "anonymous-visitor-5", ACCOUNT, to_bot=False)
    nobody = await client.get("/api/residents/statement", params={
        "conversation_id": str(web.conversation_id), "account_number": ACCOUNT})
    assert nobody.status == 401
    paths = (await (await client.get("/api/openapi.json")).json())["paths"]
    assert {"/api/residents/statement", "/api/residents/tickets", "/api/residents/verify"} <= set(paths)


async def test_look_ups_from_one_address_are_limited_apart_from_each_resident(client, ctx) -> None:
    """New client ids from one address do not reset the count, and the address has a limit of its own."""
    ctx.config.privacy.lookup_accounts_per_hour = 5
    ctx.config.privacy.lookup_accounts_per_address_per_hour = 3
    accounts = [f"21000001{i:02d}" for i in range(4)]
    for account in accounts:
        await _customer(ctx, account)
    place = {"origin": "digest-of-one-address"}
    for i, account in enumerate(accounts[:3]):
        visitor = await service.receive(ctx, "web", f"rotating-visitor-{i}", account, to_bot=False, remember=place)
        assert (await _statement(client, visitor.conversation_id, account)).status == 200
    fourth = await service.receive(ctx, "web", "rotating-visitor-3", accounts[3], to_bot=False, remember=place)
    refused = await _statement(client, fourth.conversation_id, accounts[3])
    assert refused.status == 429 and "次数过多" in (await refused.json())["error"]["message"]
    # An account already asked about from that address is answered again; another address is not held back.
    assert (await _statement(client, fourth.conversation_id, accounts[0])).status == 200
    elsewhere = await service.receive(ctx, "web", "visitor-elsewhere", accounts[3], to_bot=False,
                                      remember={"origin": "digest-of-another-address"})
    assert (await _statement(client, elsewhere.conversation_id, accounts[3])).status == 200
