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

from aiohttp import web

from hotline.actors import Actor
from hotline.api.middleware import authenticate
from hotline.api.registry import ACTOR, AGENTS, CTX


def visible(actor: Actor, event: dict[str, Any]) -> bool:
    """Department staff see their department's tickets and their own notices; agents see everything."""
    kind = event.get("type", "")
    if kind == "notification":
        return actor.id in event.get("staff_ids", [])
    if kind.startswith("conversation."):
        return actor.role in AGENTS
    if kind == "resync":
        return True
    if kind == "ticket.changed":
        return actor.role != "department" or event.get("department_id") == actor.department_id
    return False


async def events_socket(request: web.Request) -> web.WebSocketResponse:
    await authenticate(request)
    actor = request.get(ACTOR)
    if actor is None or not actor.is_staff:
        raise web.HTTPUnauthorized(text="sign in first")
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

    task = asyncio.create_task(pump())
    try:
        async for _ in ws:  # the console only listens; reading keeps the socket alive
            pass
    finally:
        detach()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await task
    return ws


def setup(app: web.Application) -> None:
    app.router.add_get("/ws/events", events_socket)
