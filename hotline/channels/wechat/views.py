"""GET/POST /wechat: server verification and pushes in plaintext, compatible and safe (AES) mode.

The configured mode decides what is accepted: safe takes only encrypted
pushes, plaintext only plaintext ones, compatible both (and answers each the
way it came). Every request must be fresh (timestamp within
[wechat] max_age_seconds either way) and carry a nonce not seen in that window;
see replay.py. The query (signatures, nonce) is kept out of the access log by
hotline.api.middleware.RedactingAccessLogger.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.parsers.expat import ExpatError

import yaml
from aiohttp import web
from wechatpy import parse_message
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.replies import TextReply
from wechatpy.utils import check_signature

from hotline.channels.wechat.api import WeChatApi
from hotline.channels.wechat.channel import PassiveReply, WeChatChannel
from hotline.channels.wechat.replay import ReplayGuard
from hotline.context import AppContext
from hotline.conversations import service
from hotline.incidents import bindings

log = logging.getLogger(__name__)

# WeChat gives up after 5 s; answer well before that, counting the network.
PASSIVE_WINDOW = 4.0
MENU = yaml.safe_load((Path(__file__).resolve().parents[3] / "config" / "wechat_menu.yml").read_text("utf-8"))
TRUNCATED = "…（内容过长，其余部分未保存）"


@dataclass
class Endpoint:
    """What /wechat accepts, fixed at start from [wechat], and where it hands pushes."""
    mode: str  # plaintext, compatible or safe
    guard: ReplayGuard
    max_stored_chars: int
    ctx: AppContext
    channel: WeChatChannel | None  # None until [wechat] token is set


ENDPOINT = web.AppKey("wechat_endpoint", Endpoint)


def _wechat(request: web.Request) -> tuple[WeChatChannel, AppContext]:
    endpoint = request.app[ENDPOINT]
    if endpoint.channel is None:
        raise web.HTTPNotFound(text="WeChat is not configured")
    return endpoint.channel, endpoint.ctx


def _fresh_timestamp(endpoint: Endpoint, q: Any) -> int:
    timestamp = endpoint.guard.fresh(q.get("timestamp", ""))
    if timestamp is None:
        raise web.HTTPForbidden(text="timestamp outside the allowed window")
    return timestamp


def _first_use(endpoint: Endpoint, timestamp: int, q: Any) -> None:
    """After the signature check: a nonce seen before means a replayed request."""
    if not endpoint.guard.first_use(timestamp, q.get("nonce", "")):
        raise web.HTTPForbidden(text="nonce already used")


async def verify(request: web.Request) -> web.Response:
    _, ctx = _wechat(request)
    endpoint = request.app[ENDPOINT]
    q = request.query
    timestamp = _fresh_timestamp(endpoint, q)
    try:
        check_signature(ctx.config.wechat.token, q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", ""))
    except InvalidSignatureException:
        raise web.HTTPForbidden(text="invalid signature") from None
    _first_use(endpoint, timestamp, q)
    return web.Response(text=q.get("echostr", ""))


async def push(request: web.Request) -> web.Response:
    channel, ctx = _wechat(request)
    endpoint = request.app[ENDPOINT]
    cfg = ctx.config.wechat
    q = request.query
    encrypted = q.get("encrypt_type") == "aes"
    if not encrypted and endpoint.mode == "safe":
        raise web.HTTPForbidden(text="safe mode: plaintext pushes are refused")
    if encrypted and endpoint.mode == "plaintext":
        raise web.HTTPForbidden(text="plaintext mode: encrypted pushes are refused")
    timestamp = _fresh_timestamp(endpoint, q)
    body = await request.read()
    crypto = WeChatCrypto(cfg.token, cfg.encoding_aes_key, cfg.app_id) if encrypted else None
    try:
        if crypto is not None:
            xml = crypto.decrypt_message(body, q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""))
        else:
            check_signature(cfg.token, q.get("signature", ""), q.get("timestamp", ""), q.get("nonce", ""))
            xml = body.decode("utf-8")
    except (InvalidSignatureException, InvalidAppIdException):
        raise web.HTTPForbidden(text="invalid signature or appid") from None
    except (ValueError, KeyError, ExpatError, UnicodeDecodeError, TypeError):
        raise web.HTTPBadRequest(text="not a WeChat message") from None
    _first_use(endpoint, timestamp, q)
    try:
        message = parse_message(xml)
    except (ValueError, KeyError, ExpatError, TypeError):
        raise web.HTTPBadRequest(text="not a WeChat message") from None

    openid = message.source
    handled = _handle(ctx, message, endpoint.max_stored_chars)
    if handled is None:
        return web.Response(text="success")
    passive = channel.passive.setdefault(openid, PassiveReply())
    passive.open = True
    task = asyncio.create_task(handled)
    try:
        await asyncio.wait_for(asyncio.shield(task), PASSIVE_WINDOW)
    except TimeoutError:
        pass  # the rest goes out through the customer-service API
    except Exception:
        log.exception("handling a WeChat push failed")
    passive.open = False
    channel.passive.pop(openid, None)
    collected, passive.messages = passive.messages, []
    if not collected:
        return web.Response(text="success")
    if not task.done():
        # Too late for a passive reply: everything collected so far goes by the API.
        asyncio.create_task(_send_late(ctx, channel, openid, collected))
        return web.Response(text="success")
    reply = TextReply(source=message.target, target=openid, content="\n\n".join(m.text for m in collected)).render()
    if crypto is not None:
        reply = crypto.encrypt_message(reply, q.get("nonce", ""), str(int(time.time())))
    return web.Response(text=reply, content_type="application/xml")


async def _send_late(ctx: Any, channel: WeChatChannel, openid: str, collected: list) -> None:
    for msg in collected:
        delivery = await channel.send_via_api(openid, msg.text)
        await service.record_delivery(ctx, msg.conversation_id, msg, delivery)


def _cut(text: str, limit: int) -> tuple[str, dict[str, Any] | None]:
    """A resident's text as stored: at most `limit` characters, marked when cut (its full length kept)."""
    if len(text) <= limit:
        return text, None
    return text[:limit - len(TRUNCATED)] + TRUNCATED, {"truncated_from_chars": len(text)}


def _handle(ctx: Any, message: Any, max_chars: int):
    """The coroutine that stores (and answers) one push, or None for what needs no answer."""
    openid = message.source
    kind = message.type
    if kind == "text":
        text, cut = _cut(message.content or "", max_chars)
        return service.receive(ctx, "wechat", openid, text, payload=cut, channel_message_id=str(message.id),
                               metadata={"channel": "wechat"})
    if kind == "voice":
        text, _ = _cut((getattr(message, "recognition", None) or "").strip(), max_chars)
        payload = {"media_id": message.media_id, "format": message.format}
        if text:
            return service.receive(ctx, "wechat", openid, text, kind="voice", payload=payload,
                                   channel_message_id=str(message.id), metadata={"channel": "wechat"})
        return _stored_then_say(ctx, openid, "[语音]", "voice", payload, str(message.id),
                                ctx.messages("wechat.voice_not_recognised"))
    if kind == "image":
        payload = {"media_id": message.media_id, "pic_url": message.image}
        return _stored_then_say(ctx, openid, "[图片]", "image", payload, str(message.id),
                                ctx.messages("wechat.image_received"))
    if kind == "location":
        label, _ = _cut(message.label or f"{message.location_x},{message.location_y}", max_chars)
        location = {"address": label, "latitude": float(message.location_x), "longitude": float(message.location_y)}
        return service.receive(ctx, "wechat", openid, f"我的位置：{label}", kind="location", payload=location,
                               channel_message_id=str(message.id), metadata={"channel": "wechat"},
                               remember=location)
    if kind == "event":
        event_id = f"{openid}:{message.create_time.timestamp():.0f}:{message.event}"
        if message.event == "subscribe":
            return _stored_then_say(ctx, openid, "[关注]", "event", {"event": "subscribe"}, event_id,
                                    ctx.messages("wechat.welcome", privacy_url=f"{ctx.config.public_url}/privacy"))
        if message.event == "unsubscribe":
            return _unsubscribed(ctx, openid, event_id)
        if message.event == "click" and message.key in MENU:
            return service.receive(ctx, "wechat", openid, MENU[message.key], kind="event",
                                   payload={"event": "click", "key": message.key}, channel_message_id=event_id,
                                   metadata={"channel": "wechat"})
    return None


async def _unsubscribed(ctx: AppContext, openid: str, event_id: str) -> None:
    """Recorded, and the user's account bindings dropped: no more outage notices to a closed door."""
    await service.receive(ctx, "wechat", openid, "[取消关注]", kind="event", payload={"event": "unsubscribe"},
                          channel_message_id=event_id, to_bot=False)
    async with ctx.sessions.begin() as session:
        await bindings.unbind(session, openid, ctx.clock())


async def _stored_then_say(ctx: Any, openid: str, text: str, kind: str, payload: dict, message_id: str,
                           answer: str) -> None:
    received = await service.receive(ctx, "wechat", openid, text, kind=kind, payload=payload,
                                     channel_message_id=message_id, to_bot=False)
    if not received.duplicate:
        await service.send(ctx, received.conversation_id, "system", answer)


def setup(app: web.Application, ctx: AppContext) -> WeChatChannel | None:
    """Routes, and the channel once a token is set; a [wechat] mode that cannot work stops the start."""
    cfg = ctx.config.wechat
    channel = None
    if cfg.token:
        api = WeChatApi(cfg.api_base_url, cfg.app_id, cfg.app_secret)
        channel = WeChatChannel(api)

        async def close_api(_: web.Application) -> None:
            await api.close()
        app.on_cleanup.append(close_api)
    app[ENDPOINT] = Endpoint(mode=cfg.effective_mode(), guard=ReplayGuard(cfg.max_age_seconds),
                             max_stored_chars=cfg.max_stored_chars, ctx=ctx, channel=channel)
    app.router.add_get("/wechat", verify)
    app.router.add_post("/wechat", push)
    return channel
