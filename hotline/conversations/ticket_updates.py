"""Tell the resident, on the conversation a ticket came from, when the ticket moves on."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from hotline.context import AppContext
from hotline.conversations import service

log = logging.getLogger(__name__)

NOTICES = {
    "assign": "您的工单 {ticket} 已派发给责任人员，正在安排处理。",
    "start": "您的工单 {ticket} 工作人员已开始处理。",
    "resolve": "您的工单 {ticket} 已处理完毕，我们稍后会回访，请留意。",
    "reopen": "您的工单 {ticket} 已重新安排处理。",
}


def subscribe(ctx: AppContext) -> None:
    tasks: set[asyncio.Task[Any]] = set()

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") != "ticket.changed" or not event.get("conversation_id"):
            return
        template = NOTICES.get(event.get("action", ""))
        if template is None:
            return
        task = asyncio.get_running_loop().create_task(
            service.send(ctx, event["conversation_id"], "system", template.format(ticket=event["ticket"])))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    ctx.bus.subscribe(on_event)
