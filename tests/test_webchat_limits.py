"""The web chat's limits per network address: sockets opened and messages sent a minute, accounts looked up
an hour by any of the address's clients; X-Forwarded-For believed only from [http] trusted_proxies; closed
sockets leave the registry."""
from __future__ import annotations

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from hotline.channels.webchat.limits import WebChatConfig
from models import Conversation, Customer, Message
from tests.conftest import SERVICE, eventually
from tests.test_conversations import FakeRasa, _recv, chat  # noqa: F401  (the fixture)

pytestmark = pytest.mark.asyncio


async def _refusals(client) -> dict[str, float]:
    text = await (await client.get("/metrics")).text()
    return {s.labels["reason"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "hotline_resident_refusals_total"}


async def test_one_address_opens_only_so_many_sockets_a_minute(chat, ctx) -> None:
    client, _ = chat
    ctx.config.channels["web"] = WebChatConfig(connections_per_minute=3)
    sockets = [await client.ws_connect(f"/ws/chat?client=visitor-{i:04d}") for i in range(3)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect("/ws/chat?client=visitor-0003", headers={"X-Forwarded-For": "203.0.113.9"})
    assert refused.value.status == 429  # the header of a peer nobody trusts is not believed
    ctx.config.http.trusted_proxies = "127.0.0.1"
    behind_proxy = await client.ws_connect("/ws/chat?client=visitor-0004", headers={"X-Forwarded-For": "203.0.113.9"})
    assert (await _recv(behind_proxy, "history"))["messages"] == []
    ctx.config.http.trusted_proxies = ""  # /metrics is read from loopback itself, not through a proxy
    assert (await _refusals(client))["webchat_connections"] == 1
    for ws in [*sockets, behind_proxy]:
        await ws.close()


async def test_one_address_sends_only_so_many_messages_a_minute(chat, ctx) -> None:
    client, fake = chat
    ctx.config.channels["web"] = WebChatConfig(messages_per_minute=2)
    ws = await client.ws_connect("/ws/chat?client=chatty-0001")
    other = await client.ws_connect("/ws/chat?client=chatty-0002")  # same address, another browser
    await _recv(ws, "history")
    await _recv(other, "history")
    for i, socket in enumerate((ws, other)):
        await socket.send_json({"type": "message", "id": f"m{i}", "text": f"你好{i}"})
        await _recv(socket, "message")
    await other.send_json({"type": "message", "id": "m9", "text": "再来一条"})
    error = await _recv(other, "error")
    assert error["message"] == ctx.messages("webchat.too_fast")
    async with ctx.readers() as session:
        texts = list((await session.execute(select(Message.text).where(Message.sender_kind == "resident"))).scalars())
    assert "再来一条" not in texts and len(fake.received) == 2
    assert (await _refusals(client))["webchat_messages"] == 1
    await ws.close()
    await other.close()


async def test_closed_sockets_leave_the_registry(chat, ctx) -> None:
    client, _ = chat
    channel = ctx.channels["web"]
    ws = await client.ws_connect("/ws/chat?client=leaving-0001")
    await _recv(ws, "history")
    assert "leaving-0001" in channel.sockets
    await ws.close()
    await eventually(lambda: "leaving-0001" not in channel.sockets)
    assert "leaving-0001" not in channel.sockets


async def test_accounts_looked_up_from_one_address_are_counted_across_its_clients(chat, ctx) -> None:
    client, _ = chat
    async with ctx.sessions.begin() as session:
        for i in range(6):
            session.add(Customer(account_number=f"220000000{i}", name="刘洋", address="建设路1号", area="城东片区",
                                 meter_model="LXS-20E", meter_size_dn=20, meter_serial=f"S{i}"))
    conversations = []
    for name in ("walker-0001", "walker-0002"):
        ws = await client.ws_connect(f"/ws/chat?client={name}")
        await _recv(ws, "history")
        await ws.send_json({"type": "message", "id": "m1", "text": "查水费"})
        await _recv(ws, "message")
        await ws.close()
        async with ctx.readers() as session:
            conv = (await session.execute(select(Conversation).where(Conversation.external_user == name))).scalar_one()
        assert conv.slots["origin"] and "127.0.0.1" not in str(conv.slots)  # a digest, not the address
        conversations.append(conv.id)

    async def look_up(conversation_id: int, account: str) -> int:
        return (await client.get("/api/residents/statement", headers=SERVICE, params={
            "conversation_id": str(conversation_id), "account_number": account})).status

    for i in range(5):
        assert await look_up(conversations[0], f"220000000{i}") == 200
    assert await look_up(conversations[1], "2200000005") == 429  # another browser, the same address
    assert await look_up(conversations[1], "2200000000") == 200  # already asked about from this address
