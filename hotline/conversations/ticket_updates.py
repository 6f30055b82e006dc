"""Tell the resident, on the conversation a ticket came from, when the ticket moves on."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from hotline.context import AppContext
from hotline.conversations import service

log = logging.getLogger(__name__)

NOTICES = ("assign", "start", "resolve", "reopen")  # the ticket actions a resident hears of (ticket.* texts)


def subscribe(ctx: AppContext) -> None:
    tasks: set[asyncio.Task[Any]] = set()

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") != "ticket.changed" or not event.get("conversation_id"):
            return
        if event.get("action") not in NOTICES:
            return
        text = ctx.messages(f"ticket.{event['action']}", ticket=event["ticket"])
        task = asyncio.get_running_loop().create_task(service.send(ctx, event["conversation_id"], "system", text))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    ctx.bus.subscribe(on_event)
