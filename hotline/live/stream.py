"""GET /ws/events: the live event stream for signed-in staff (new messages, waiting
conversations, ticket changes, escalation notices), sent only after each change commits.

The stream reads `ctx.live`: this process's events and, on PostgreSQL, every
other process's (hotline/live/postgres.py). The first frame is {"type": "hello"};
a {"type": "resync"} frame means events may have been missed and lists should be
fetched again.
"""
from __future__ import annotations

import asyncio
import contextlib
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from hotline.actors import Actor
from hotline.api.middleware import authenticate
from hotline.api.registry import ACTOR, AGENTS, CTX
from hotline.auth import sessions as staff_sessions


def visible(actor: Actor, event: dict[str, Any]) -> bool:
    """Department staff see their department's tickets and their own notices; agents see everything."""
    kind = event.get("type", "")
    if kind == "notification":
        return actor.id in event.get("staff_ids", [])
    if kind.startswith("conversation."):
        return actor.role in AGENTS
    if kind == "resync":
        return True
    if kind.startswith("call.") or kind == "callback.changed":
        return actor.role in AGENTS
    if kind in ("presence.changed", "canned.changed"):
        return actor.role in AGENTS  # the supervisors' overview, the reply box's canned replies
    if kind in ("incident.changed", "outage.changed"):
        return True  # dispatchers in departments see incidents and outages too
    if kind == "alert.changed":
        return actor.role in ("supervisor", "admin")
    if kind == "ticket.changed":
        return actor.role != "department" or event.get("department_id") == actor.department_id
    return False


SESSION_CHECK_SECONDS = 30.0


def _same_origin(request: web.Request) -> bool:
    """A browser always sends Origin on a WebSocket; another site's page must not ride the cookie."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


async def _still_signed_in(request: web.Request, token: str) -> bool:
    ctx = request.app[CTX]
    async with ctx.readers() as session:
        return await staff_sessions.resolve(session, token, ctx.clock()) is not None


async def events_socket(request: web.Request) -> web.WebSocketResponse:
    if not _same_origin(request):
        raise web.HTTPForbidden(text="cross-origin WebSocket refused")
    await authenticate(request)
    actor = request.get(ACTOR)
    if actor is None or not actor.is_staff:
        raise web.HTTPUnauthorized(text="sign in first")
    token = request.cookies[staff_sessions.COOKIE]
    ctx = request.app[CTX]
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    queue, detach = ctx.live.queue()
    await ws.send_json({"type": "hello", "role": actor.role, "staff_id": actor.id})

    async def pump() -> None:
        while True:
            event = await queue.get()
            if visible(actor, event):
                await ws.send_json(event)

    async def watch_session() -> None:
        """A signed-out or expired session stops hearing events within SESSION_CHECK_SECONDS."""
        while True:
            await asyncio.sleep(SESSION_CHECK_SECONDS)
            if not await _still_signed_in(request, token):
                await ws.close(code=4401, message=b"signed out")
                return

    tasks = [asyncio.create_task(pump()), asyncio.create_task(watch_session())]
    try:
        async for _ in ws:  # the console only listens; reading keeps the socket alive
            pass
    finally:
        detach()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await task
    return ws


def setup(app: web.Application) -> None:
    app.router.add_get("/ws/events", events_socket)
