"""Web chat channel: residents' browsers connected over WebSocket.

A browser keeps a random client id in localStorage; the id is the
conversation's external user, so a reload or a dropped connection resumes the
same conversation and its history. One network address may open only so many
sockets and send only so many messages a minute ([web], limits.py); the
conversation remembers the address as a digest (`origin`), so that the
hotline can count the accounts asked about from one address.

With several service processes (PostgreSQL), the resident's socket may sit on
another process than the agent who answers: replies and status changes made
elsewhere arrive as remote live events and are pushed from here.

The page greets with the catalogue's webchat.greeting before anything is typed,
shows the latest conversation (closed ones too, with their ticket numbers), the
rating's choices as buttons, and a waiting resident's place in the agents' queue.
"""
from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from aiohttp import WSMsgType, web
from sqlalchemy import and_, func, or_, select

from hotline.api.client_address import client_address
from hotline.channels.base import ChannelInfo, Delivery
from hotline.channels.webchat.limits import RateLimit, WebChatConfig
from hotline.context import AppContext
from hotline.conversations import service
from hotline.customers.disclosure import refused
from hotline.customers.lookups import origin_of
from models import Conversation, Message, Ticket

log = logging.getLogger(__name__)

CLIENT_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_TEXT = 2000
PAGE = Path(__file__).resolve().parent / "chat.html"
STATIC = Path(__file__).resolve().parent / "static"
# No inline script or style, no framing (clickjacking), sockets only to this origin.
PAGE_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
                                "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def message_json(msg: Message) -> dict[str, Any]:
    return {"type": "message", "id": msg.id, "sender": msg.sender_kind, "text": msg.text,
            "at": msg.created_at.isoformat()}


def parse_choices(text: str) -> list[dict[str, str]]:
    """"1 很不满意|…|5 非常满意" → buttons that send the leading digit, as typing it would."""
    choices = []
    for item in text.split("|"):
        value, _, label = item.strip().partition(" ")
        if value:
            choices.append({"value": value, "label": item.strip()})
    return choices


# The live events by which a conversation enters or leaves the agents' queue.
QUEUE_CHANGES = frozenset({"conversation.waiting", "conversation.taken", "conversation.agent_joined",
                           "conversation.reassigned", "conversation.closed", "conversation.handed_back"})

INFO = ChannelInfo(name="web", label="网页", sends=frozenset({"text"}), identifies_by="browser id")


class WebChatChannel:
    """Residents' sockets by browser id; delivers to every tab a resident has open."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.typing_text = ctx.messages("webchat.typing")
        self.rating_text = ctx.messages("conversation.rating")
        self.rating_choices = parse_choices(ctx.messages("webchat.rating_choices"))
        self.sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self.connections, self.messages = RateLimit(), RateLimit()
        self.places: dict[str, int] = {}  # the place in the queue each waiting client was last told
        self._places_task: asyncio.Task[None] | None = None
        self._places_again = False
        self._page: bytes | None = None

    @property
    def limits(self) -> WebChatConfig:
        found = self.ctx.config.channels.get(INFO.name)
        return found if isinstance(found, WebChatConfig) else WebChatConfig()

    def _forget(self, client: str, ws: web.WebSocketResponse) -> None:
        """A closed socket leaves the registry, and a client with none left leaves it too."""
        sockets = self.sockets.get(client)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                del self.sockets[client]

    def frame(self, message: Message, rated: bool = False) -> dict[str, Any]:
        """A message for the page; the rating request carries its choices as buttons."""
        data = message_json(message)
        if not rated and message.sender_kind == "system" and message.text == self.rating_text:
            data["choices"] = self.rating_choices
        return data

    async def deliver(self, conversation: Conversation, message: Message) -> Delivery:
        sockets = list(self.sockets.get(conversation.external_user, ()))
        sent = 0
        for ws in sockets:
            try:
                await ws.send_json(self.frame(message))
                sent += 1
            except (ConnectionError, RuntimeError):
                self._forget(conversation.external_user, ws)
        return Delivery("delivered") if sent else Delivery("stored")

    async def typing(self, client: str, on: bool) -> None:
        """The page shows the catalogue's webchat.typing while the bot works on the resident's message."""
        await self.push(client, {"type": "typing", "on": on, "text": self.typing_text})

    async def push(self, client: str, frame: dict[str, Any]) -> None:
        for ws in list(self.sockets.get(client, ())):
            try:
                await ws.send_json(frame)
            except (ConnectionError, RuntimeError):
                self._forget(client, ws)

    def on_event(self, event: dict[str, Any]) -> None:
        """Tell the resident's page when a person joins or the conversation changes hands, and
        show replies stored by another process (this process delivers its own in `deliver`)."""
        if not event.get("type", "").startswith("conversation."):
            return
        if event["type"] in QUEUE_CHANGES and self.sockets:
            self.update_places()  # someone joined or left the agents' queue: places may change
        if event.get("channel") != INFO.name:
            return
        client = event.get("external_user")
        if not client or client not in self.sockets:
            return
        if event["type"] == "conversation.message":
            message = event.get("message") or {}
            if event.get("remote") and message.get("direction") == "out":
                frame = {"type": "message", "id": message.get("id"), "sender": message.get("sender_kind"),
                         "text": message.get("text", ""), "at": message.get("created_at")}
                if frame["sender"] == "system" and frame["text"] == self.rating_text:
                    frame["choices"] = self.rating_choices
                asyncio.get_running_loop().create_task(self.push(client, frame))
            return
        extra = {"agent": event["agent_name"]} if "agent_name" in event else {}
        frame = {"type": "status", "status": event["status"], **extra}
        asyncio.get_running_loop().create_task(self.push(client, frame))

    def update_places(self) -> None:
        """Recount the waiting residents' places soon; one count at a time, once more if asked meanwhile."""
        if self._places_task is not None and not self._places_task.done():
            self._places_again = True
            return
        self._places_task = asyncio.get_running_loop().create_task(self._push_places())

    async def _push_places(self) -> None:
        while True:
            self._places_again = False
            try:
                async with self.ctx.readers() as session:
                    waiting = (await session.execute(
                        select(Conversation.channel, Conversation.external_user)
                        .where(Conversation.status == "waiting")
                        .order_by(Conversation.waiting_since, Conversation.id))).all()
            except Exception:  # a place in the queue is never worth failing anything for
                log.warning("queue places not counted", exc_info=True)
                return
            places = {user: ahead for ahead, (channel_name, user) in enumerate(waiting)
                      if channel_name == INFO.name and user in self.sockets}
            for client in [c for c in self.places if c not in places]:
                del self.places[client]
            for client, ahead in places.items():
                if self.places.get(client) != ahead:
                    self.places[client] = ahead
                    await self.push(client, self.place_frame(ahead))
            if not self._places_again:
                return

    def place_frame(self, ahead: int) -> dict[str, Any]:
        return {"type": "queue", "ahead": ahead, "text": self.ctx.messages("webchat.queue_position", ahead=ahead)}

    async def _history(self, client: str) -> dict[str, Any]:
        """The latest conversation, closed or not, with its messages and its tickets' numbers."""
        async with self.ctx.readers() as session:
            conv = (await session.execute(select(Conversation).where(
                Conversation.channel == INFO.name, Conversation.external_user == client)
                .order_by(Conversation.id.desc()).limit(1))).scalar_one_or_none()
            if conv is None:
                return {"type": "history", "status": None, "messages": [], "tickets": []}
            messages = (await session.execute(select(Message).where(Message.conversation_id == conv.id)
                                              .order_by(Message.id))).scalars().all()
            tickets = (await session.execute(select(Ticket.number).where(Ticket.conversation_id == conv.id)
                                             .order_by(Ticket.id))).scalars().all()
            ahead = None
            if conv.status == "waiting" and conv.waiting_since is not None:
                ahead = (await session.execute(select(func.count()).where(
                    Conversation.status == "waiting", or_(
                        Conversation.waiting_since < conv.waiting_since,
                        and_(Conversation.waiting_since == conv.waiting_since, Conversation.id < conv.id)))
                )).scalar_one()
        asked = conv.rating_requested_at
        rated = conv.satisfaction is not None or asked is None \
            or asked <= self.ctx.clock() - service.RATING_WINDOW  # a digit no longer rates it
        data: dict[str, Any] = {"type": "history", "status": conv.status,
                                "messages": [self.frame(m, rated) for m in messages], "tickets": list(tickets)}
        if tickets:
            data["tickets_text"] = self.ctx.messages("webchat.tickets", tickets="、".join(tickets))
        if ahead is not None:
            self.places[client] = ahead
            data["queue"] = self.place_frame(ahead)
        return data

    async def page(self, request: web.Request) -> web.Response:
        """/chat: the page with the catalogue's greeting in it, shown before anything is typed."""
        if self._page is None:
            greeting = html.escape(self.ctx.messages("webchat.greeting"))
            self._page = PAGE.read_text(encoding="utf-8").replace("<!--greeting-->", greeting).encode("utf-8")
        return web.Response(body=self._page, headers={"Content-Type": "text/html; charset=utf-8", **PAGE_HEADERS})

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        """/ws/chat: history first, then each message stored, acknowledged and answered in order."""
        client = request.query.get("client", "")
        if not CLIENT_RE.match(client):
            raise web.HTTPBadRequest(text="client must be 8-64 letters, digits, - or _")
        ctx = self.ctx
        address = client_address(request, ctx.config.http.trusted_proxies)
        if not self.connections.allow(address, self.limits.connections_per_minute):
            refused(ctx, INFO.name, "webchat_connections")
            raise web.HTTPTooManyRequests(text=ctx.messages("webchat.too_many_connections"))
        origin = origin_of(address, ctx.config.api.service_token)
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=64 * 1024)
        await ws.prepare(request)
        self.sockets[client].add(ws)
        try:
            await ws.send_json(await self._history(client))
            async for frame in ws:
                if frame.type != WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(frame.data)
                    text = str(data.get("text", "")).strip()
                    message_id = data.get("id")
                except (ValueError, AttributeError):
                    await ws.send_json({"type": "error", "message": ctx.messages("webchat.bad_format")})
                    continue
                if not text or len(text) > MAX_TEXT:
                    await ws.send_json({"type": "error", "message": ctx.messages("webchat.too_long", limit=MAX_TEXT)})
                    continue
                if not self.messages.allow(address, self.limits.messages_per_minute):
                    refused(ctx, INFO.name, "webchat_messages")
                    await ws.send_json({"type": "error", "id": message_id, "message": ctx.messages("webchat.too_fast")})
                    continue

                async def ack(received: service.Received, message_id: Any = message_id) -> None:
                    await ws.send_json({"type": "ack", "id": message_id, "duplicate": received.duplicate})

                own_id = f"{client}:{message_id}" if isinstance(message_id, str) and message_id else None
                received = await service.receive(ctx, INFO.name, client, text, channel_message_id=own_id,
                                                 metadata={"channel": INFO.name}, remember={"origin": origin},
                                                 on_stored=ack)
                if received.duplicate:
                    await ack(received)
        finally:
            self._forget(client, ws)
        return ws


async def chat_asset(request: web.Request) -> web.FileResponse:
    name = request.match_info["name"]
    kind = {"chat.js": "text/javascript", "chat.css": "text/css", "icon.svg": "image/svg+xml"}.get(name)
    if kind is None:
        raise web.HTTPNotFound()
    return web.FileResponse(STATIC / name, headers={"Content-Type": f"{kind}; charset=utf-8",
                                                    "X-Content-Type-Options": "nosniff"})


class WebChatPlugin:
    info = INFO
    config = WebChatConfig

    def setup(self, app: web.Application, ctx: AppContext) -> WebChatChannel:
        channel = WebChatChannel(ctx)
        ctx.live.subscribe(channel.on_event)
        app.router.add_get("/chat", channel.page)
        app.router.add_get("/chat/static/{name}", chat_asset)
        app.router.add_get("/ws/chat", channel.socket)
        return channel
