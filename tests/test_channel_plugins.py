"""Channels are plug-ins: one registered through the interface appears everywhere, with no other code touched."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from hotline.app import create_app
from hotline.channels import registry
from hotline.channels.base import ChannelInfo, Delivery
from hotline.config import ROOT
from hotline.conversations import service
from models import Conversation, Message

SERVICE = {"Authorization": "Bearer test-service-token"}


class SmsChannel:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def deliver(self, conversation: Conversation, message: Message) -> Delivery:
        self.sent.append((conversation.external_user, message.text))
        return Delivery("delivered")


class SmsPlugin:
    """A test-only channel: an SMS gateway posting residents' texts to /sms."""

    info = ChannelInfo(name="sms", label="短信", sends=frozenset({"text"}), identifies_by="mobile number")
    config = None

    def setup(self, app: web.Application, ctx) -> SmsChannel:  # type: ignore[no-untyped-def]
        channel = SmsChannel()

        async def inbound(request: web.Request) -> web.Response:
            form = await request.post()
            await service.receive(ctx, "sms", str(form["from"]), str(form["text"]), to_bot=False)
            return web.Response(text="OK")

        app.router.add_post("/sms", inbound)
        return channel


@pytest.fixture
def sms() -> Iterator[SmsPlugin]:
    plugin = registry.register(SmsPlugin())
    yield plugin
    registry.unregister("sms")


async def test_a_registered_channel_appears_in_meta_openapi_validation_and_delivery(ctx, staff, sms) -> None:
    ctx.config.api.service_token = "test-service-token"
    async with TestClient(TestServer(create_app(ctx))) as client:
        meta = await (await client.get("/api/meta", headers=SERVICE)).json()
        assert {"name": "sms", "label": "短信", "sends": ["text"], "identifies_by": "mobile number",
                "conversations": True} in meta["channels"]
        assert {c["name"] for c in meta["channels"]} == {"web", "wechat", "phone", "counter", "gov12345", "sms"}
        assert set(meta) >= {"channels", "categories", "business_types", "statuses", "roles"}

        doc = await (await client.get("/api/openapi.json")).json()
        assert "sms" in doc["components"]["schemas"]["TicketCreate"]["properties"]["channel"]["enum"]
        query = {p["name"]: p for p in doc["paths"]["/api/tickets"]["get"]["parameters"]}
        assert "sms" in str(query["channel"]["schema"])

        # Inbound through its own route, a ticket from it, and the agent's reply delivered on it.
        assert (await client.post("/sms", data={"from": "13800000000", "text": "楼下水管漏水"})).status == 200
        created = await client.post("/api/tickets", headers=SERVICE, json={
            "category": "repair", "description": "楼下水管漏水", "channel": "sms"})
        assert created.status == 201, await created.text()
        listed = await (await client.get("/api/tickets", params={"channel": "sms"}, headers=SERVICE)).json()
        assert [t["channel"] for t in listed["items"]] == ["sms"]
        unknown = await client.post("/api/tickets", headers=SERVICE, json={
            "category": "repair", "description": "漏水", "channel": "fax"})
        assert unknown.status == 422 and "unknown channel 'fax'" in await unknown.text()
    async with ctx.readers() as session:
        from sqlalchemy import select
        conv = (await session.execute(select(Conversation).where(Conversation.channel == "sms"))).scalar_one()
    await service.take_over(ctx, conv.id, staff["agent1"])
    await service.agent_reply(ctx, conv.id, staff["agent1"], "师傅马上到")
    assert ctx.channels["sms"].sent[-1] == ("13800000000", "师傅马上到")


def test_the_console_and_the_bot_take_channel_names_from_the_server() -> None:
    """No list of channels is spelled out outside the registry (the console reads /api/meta)."""
    console = (ROOT / "hotline/console/static/console.js").read_text(encoding="utf-8")
    assert "微信" not in console and "柜台" not in console
    actions = (ROOT / "bot/actions/common.py").read_text(encoding="utf-8")
    assert '"wechat", "web", "phone"' not in actions


def test_every_channel_folder_registers_a_plugin() -> None:
    folders = {p.name for p in (Path(registry.__file__).parent).iterdir()
               if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {"counter", "gov12345", "phone", "webchat", "wechat"}
    assert set(registry.names()) >= {"counter", "phone", "web", "wechat"}


def test_a_channel_brings_its_own_configuration_section(tmp_path: Path) -> None:
    import dataclasses

    from hotline.config import ConfigError, describe_settings, load_config

    @dataclasses.dataclass
    class SmsConfig:
        gateway_url: str = ""
        sender_id: str = "water"

    class ConfiguredSms(SmsPlugin):
        config = SmsConfig

    registry.register(ConfiguredSms())
    try:
        path = tmp_path / "hotline.toml"
        path.write_text('[sms]\ngateway_url = "http://127.0.0.1:9/sms"\n', encoding="utf-8")
        config = load_config(path, environ={"HOTLINE_SMS_SENDER_ID": "自来水"})
        assert config.channels["sms"] == SmsConfig("http://127.0.0.1:9/sms", "自来水")
        assert "HOTLINE_SMS_GATEWAY_URL" in describe_settings()
        path.write_text('[sms]\ngateway = "x"\n', encoding="utf-8")
        with pytest.raises(ConfigError, match=r"unknown setting \[sms\] gateway"):
            load_config(path, environ={})
    finally:
        registry.unregister("sms")
    path.write_text('[sms]\ngateway_url = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"unknown section \[sms\]"):
        load_config(path, environ={})
