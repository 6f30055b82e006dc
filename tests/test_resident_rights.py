"""A resident's rights: a copy of everything held about them, and erasure that leaves no trace of them
(phone, WeChat id, web-chat id, their words) in any table, file or bot tracker, while the account's
billing records and the tickets' business facts stay."""
from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import JSON, String, Text, select, text

from hotline.app import create_app
from hotline.ivr.engine import FlowRunner
from hotline.ivr.flows import load_flows
from hotline.ivr.prompts import PromptLibrary
from hotline.rasa.client import RasaClient
from models import Base, Bill, Call, Customer, CustomerPhone, Payment, PrivacyRun, Ticket, WechatBinding
from models.nlu_feedback import NluFeedback
from tests import wechat_client as wx
from tests.conftest import SERVICE, login
from tests.ivr.scripted_line import ScriptedLine
from tests.test_wechat import FakeWeChat

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT, PHONE, OPENID, WEB_CLIENT = "3100000077", "13912345678", "oWxResidentErase0001", "web-client-erase-77"
WECHAT_WORDS = "我家楼下的总阀门一直在漏水已经三天了"
WEB_WORDS = "小区东门口的消防栓被车撞坏了水喷得很高"
OTHER_WORDS = "另一位居民反映学校门口的井盖松动了"


class FakeRasa:
    """Echoes each message (so the bot's replies quote the resident) and empties trackers on request."""

    def __init__(self) -> None:
        self.emptied: list[str] = []

    async def webhook(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response([{"recipient_id": body["sender"], "text": f"收到：{body['message']}"}])

    async def replace_events(self, request: web.Request) -> web.Response:
        assert await request.json() == []
        self.emptied.append(request.match_info["sender"])
        return web.json_response({"sender_id": request.match_info["sender"], "events": []})


@pytest_asyncio.fixture
async def service(ctx, staff) -> AsyncIterator[tuple[TestClient, FakeRasa]]:
    rasa, wechat_api = FakeRasa(), FakeWeChat()
    rasa_app = web.Application()
    rasa_app.router.add_post("/webhooks/rest/webhook", rasa.webhook)
    rasa_app.router.add_put("/conversations/{sender}/tracker/events", rasa.replace_events)
    async with TestServer(rasa_app) as rasa_server, TestServer(wechat_api.app()) as wx_server:
        ctx.bot = RasaClient(str(rasa_server.make_url("/")), timeout=10.0)
        ctx.config.wechat.token, ctx.config.wechat.app_id = wx.TOKEN, wx.APP_ID
        ctx.config.wechat.app_secret, ctx.config.wechat.encoding_aes_key = "secret", wx.AES_KEY
        ctx.config.wechat.api_base_url = str(wx_server.make_url("")).rstrip("/")
        ctx.config.wechat.mode = "compatible"
        async with TestClient(TestServer(create_app(ctx))) as client:
            yield client, rasa


async def _history(ctx, client: TestClient, tmp_path: Path) -> dict[str, Any]:
    """A full history: the account with its phone and bills, a bound WeChat user's messages and ticket,
    a web-chat conversation and ticket, a voicemail call with its recording, NLU feedback, and another
    resident who must come through untouched."""
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        customer = Customer(account_number=ACCOUNT, name="陈静", address="滨江路77号", area="城东片区",
                            meter_model="LXS-20E", meter_size_dn=20, meter_serial="M77")
        session.add(customer)
        await session.flush()
        session.add_all([
            CustomerPhone(customer_id=customer.id, phone=PHONE),
            WechatBinding(openid=OPENID, customer_id=customer.id),
            Bill(customer_id=customer.id, period="2026-08", reading_previous=1, reading_current=21, volume_m3=20,
                 amount_fen=6600, issued_on=dt.date(2026, 9, 1), due_on=dt.date(2026, 9, 15)),
            Payment(customer_id=customer.id, amount_fen=6600, paid_at=now, method="wechat"),
        ])

    # WeChat: two messages (the bot echoes them), then a ticket from that conversation.
    for msg_id, words in ((7701, WECHAT_WORDS), (7702, f"我的电话是{PHONE}")):
        query, body = wx.push(wx.message("text", OPENID, msg_id, Content=words), "plain")
        assert (await client.post("/wechat", params=query, data=body.encode())).status == 200
    # Web chat: the resident types, then the bot (service token) files a ticket for the account.
    ws = await client.ws_connect(f"/ws/chat?client={WEB_CLIENT}")
    await ws.send_json({"type": "message", "id": "w1", "text": WEB_WORDS})
    while (await ws.receive_json(timeout=10)).get("sender") != "bot":
        pass
    await ws.close()
    async with ctx.readers() as session:
        from models import Conversation
        convs = dict((await session.execute(select(Conversation.external_user, Conversation.id))).all())
    for channel, conv, words in (("wechat", convs[OPENID], WECHAT_WORDS), ("web", convs[WEB_CLIENT], WEB_WORDS)):
        resp = await client.post("/api/tickets", headers=SERVICE, json={
            "category": "repair", "description": words, "channel": channel, "account_number": ACCOUNT,
            "phone": PHONE, "contact_name": "陈女士", "address": "滨江路77号", "conversation_id": conv})
        assert resp.status == 201, await resp.text()
    # Phone: a complaint voicemail from the account's phone.
    PromptLibrary.check_tools()
    prompts = PromptLibrary(tmp_path / "recorded", ctx.config.var_dir / "prompt-cache")
    flows = load_flows(ROOT / "ivr_flows")
    state = await FlowRunner(ctx, flows["main"], prompts, ScriptedLine("3", caller=PHONE)).run()
    async with ctx.sessions.begin() as session:
        session.add(NluFeedback(conversation_id=convs[OPENID], text=WECHAT_WORDS, correct_intent="repair"))
    # Someone else, who must keep everything but our resident's number they happened to write down.
    query, body = wx.push(wx.message("text", "oWxSomeoneElse0002", 7801, Content=f"{OTHER_WORDS}，邻居电话{PHONE}"),
                          "plain")
    assert (await client.post("/wechat", params=query, data=body.encode())).status == 200
    return {"call_id": state.call_id, "conversations": convs}


NEEDLES = [PHONE, OPENID, WEB_CLIENT, WECHAT_WORDS, WEB_WORDS]


def _forms(needle: str) -> list[str]:
    return [needle, json.dumps(needle)[1:-1]]


async def _found_in_tables(ctx, needles: list[str]) -> list[str]:
    """Every text and JSON column of every table, read whole."""
    found = []
    async with ctx.readers() as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not columns:
                continue
            for row in (await session.execute(select(*columns))).all():
                for column, value in zip(columns, row, strict=True):
                    if value is None:
                        continue
                    as_text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                    found += [f"{table.name}.{column.name}: {n}" for n in needles if n in as_text]
    return found


def _found_in_files(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {n}" for n in needles for form in _forms(n) if form.encode() in data]
    return found


async def _tracker_table(ctx) -> tuple[bool, bool]:
    """On PostgreSQL, Rasa's SQL tracker store as Rasa makes it: (there, made by this test)."""
    if ctx.engine.dialect.name != "postgresql":
        return False, False
    async with ctx.engine.begin() as conn:
        existed = (await conn.execute(text("SELECT to_regclass('rasa.events') IS NOT NULL"))).scalar_one()
        await conn.execute(text('CREATE SCHEMA IF NOT EXISTS "rasa"'))
        await conn.execute(text('CREATE TABLE IF NOT EXISTS "rasa".events (id SERIAL PRIMARY KEY, '
                                'sender_id VARCHAR(255) NOT NULL, type_name VARCHAR(255) NOT NULL, timestamp FLOAT, '
                                'intent_name VARCHAR(255), action_name VARCHAR(255), data TEXT)'))
    return True, not existed


async def test_a_resident_gets_a_copy_and_erasure_leaves_no_trace(
        ctx, service, tmp_path: Path) -> None:
    client, rasa = service
    history = await _history(ctx, client, tmp_path)
    convs = history["conversations"]
    senders = [f"wechat-{convs[OPENID]}", f"web-{convs[WEB_CLIENT]}"]
    sql_tracker, made_tracker = await _tracker_table(ctx)
    if sql_tracker:
        async with ctx.engine.begin() as conn:
            for sender in [*senders, "wechat-999999"]:
                await conn.execute(text('INSERT INTO "rasa".events (sender_id, type_name, timestamp, data) '
                                        "VALUES (:s, 'user', 0, :d)"), {"s": sender, "d": json.dumps(
                                            {"text": WECHAT_WORDS if sender != "wechat-999999" else OTHER_WORDS})})
    async with ctx.readers() as session:
        recording = (await session.get(Call, history["call_id"])).recording_path  # type: ignore[union-attr]
    assert recording and (ctx.config.var_dir / recording).is_file()
    assert await _found_in_tables(ctx, NEEDLES)  # the history really holds them

    # Only admins may ask.
    agent = await login(client, "agent1")
    assert (await client.post("/api/residents/export", json={"account": ACCOUNT}, headers=agent)).status == 403
    assert (await client.post("/api/residents/erase", json={"account": ACCOUNT, "confirm": True},
                              headers=SERVICE)).status == 403
    admin = await login(client, "admin")

    # The copy: everything, as JSON and as a workbook.
    copy = await (await client.post("/api/residents/export", json={"account": ACCOUNT}, headers=admin)).json()
    assert [a["account_number"] for a in copy["accounts"]] == [ACCOUNT]
    assert [p["phone"] for p in copy["phones"]] == [PHONE]
    assert [b["amount_fen"] for b in copy["bills"]] == [6600] and len(copy["payments"]) == 1
    assert [b["openid"] for b in copy["bindings"]] == [OPENID]
    assert len(copy["tickets"]) == 3 and {t["channel"] for t in copy["tickets"]} == {"wechat", "web", "phone"}
    assert {WECHAT_WORDS, WEB_WORDS} <= {m["text"] for m in copy["messages"]}
    assert OTHER_WORDS not in json.dumps(copy, ensure_ascii=False)
    assert [c["caller"] for c in copy["calls"]] == [PHONE] and copy["calls"][0]["recording_path"] == recording
    resp = await client.post("/api/residents/export", json={"phone": PHONE, "format": "xlsx"}, headers=admin)
    assert resp.status == 200 and "spreadsheetml" in resp.headers["Content-Type"]
    from openpyxl import load_workbook
    book = load_workbook(io.BytesIO(await resp.read()))
    assert {"用水户档案", "账单", "工单", "消息", "通话记录"} <= set(book.sheetnames)
    cells = [str(c) for row in book["工单"].iter_rows(values_only=True) for c in row]
    assert WECHAT_WORDS in cells

    # Erasure.
    assert (await client.post("/api/residents/erase", json={"account": ACCOUNT}, headers=admin)).status == 422
    resp = await client.post("/api/residents/erase", json={"account": ACCOUNT, "confirm": True}, headers=admin)
    assert resp.status == 200, await resp.text()
    done = await resp.json()
    assert done["counts"]["tickets"] == 3 and done["counts"]["recordings"] == 1
    assert done["swept"] == {"messages": 2}  # the number in another resident's message and the bot's echo of it

    assert await _found_in_tables(ctx, NEEDLES) == []
    assert _found_in_files(ctx.config.var_dir, NEEDLES) == []
    assert not (ctx.config.var_dir / recording).exists()
    assert sorted(rasa.emptied) == sorted(senders)  # the running bot forgot both conversations
    if sql_tracker:
        async with ctx.engine.begin() as conn:
            left = (await conn.execute(text('SELECT sender_id FROM "rasa".events'))).scalars().all()
            await conn.execute(text('DELETE FROM "rasa".events WHERE sender_id = ANY(:s)'),
                               {"s": [*senders, "wechat-999999"]})
            if made_tracker:
                await conn.execute(text('DROP TABLE "rasa".events'))
        assert "wechat-999999" in left and not set(senders) & set(left)

    # What the law keeps: the account and its billing records, and the tickets' business facts.
    async with ctx.readers() as session:
        customer = (await session.execute(select(Customer).where(Customer.account_number == ACCOUNT))).scalar_one()
        assert customer.name == "陈静"
        assert [b.amount_fen for b in (await session.execute(select(Bill))).scalars()] == [6600]
        tickets = (await session.execute(select(Ticket).order_by(Ticket.id))).scalars().all()
        assert [(t.category, t.channel) for t in tickets] == [("repair", "wechat"), ("repair", "web"),
                                                              ("complaint", "phone")]
        assert all(t.department_id and t.created_at and t.contact_phone is None and t.description == ""
                   for t in tickets)
        run = (await session.execute(select(PrivacyRun).where(PrivacyRun.kind == "erase"))).scalar_one()
        assert run.status == "done" and run.actor_name == "admin" and run.subject_digest
        assert run.counts["bindings"] == 1 and run.counts["phones"] == 1
    # The other resident keeps every word.
    assert await _found_in_tables(ctx, [OTHER_WORDS, "oWxSomeoneElse0002"])


@pytest.mark.parametrize("kind", ["phone", "openid"])
def test_the_command_line_exports_and_erases(tmp_path: Path, kind: str) -> None:
    import os
    import subprocess
    import sys
    env = dict(os.environ, HOTLINE_SERVICE_VAR_DIR=str(tmp_path / "var"), HOTLINE_DATABASE_URL="")
    value = PHONE if kind == "phone" else OPENID

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "run_hotline.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        return done

    out = tmp_path / "copy.json"
    assert "written to" in run("resident", "export", f"--{kind}", value, "--out", str(out)).stdout
    assert json.loads(out.read_text())["subject"] == {"kind": kind, "value": value}
    erased = run("resident", "erase", f"--{kind}", value).stdout
    assert "erasure" in erased and "kept:" in erased
