"""Tell the resident, on the conversation a ticket came from, when the ticket moves on."""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from hotline.context import AppContext
from hotline.conversations import service

log = logging.getLogger(__name__)

# The ticket actions a resident hears of, each with its ticket.* text in config/messages.yml.
NOTICES = ("assign", "start", "resolve", "reopen", "approve_extension", "resolve_with_incident")


def subscribe(ctx: AppContext) -> None:
    tasks: set[asyncio.Task[Any]] = set()

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") != "ticket.changed" or not event.get("conversation_id"):
            return
        if event.get("action") not in NOTICES:
            return
        due = dt.datetime.fromisoformat(event["resolution_due_at"]).astimezone(ctx.router.calendar.timezone)
        text = ctx.messages(f"ticket.{event['action']}", ticket=event["ticket"],
                            due=f"{due.month}月{due.day}日{due:%H:%M}")
        task = asyncio.get_running_loop().create_task(service.send(ctx, event["conversation_id"], "system", text))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    ctx.bus.subscribe(on_event)
