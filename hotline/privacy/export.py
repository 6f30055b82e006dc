"""A copy of everything held about one resident (PIPL art. 45), as JSON and as an XLSX workbook.

The sections: accounts (the customer archive), phones, bills, payments, WeChat bindings, tickets
with their trail, conversations with their messages, calls, callbacks. Every row is written whole
(all its columns), so the copy never hides a field the store keeps. XLSX building is CPU work:
callers run it in a thread.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.privacy.subjects import Resident
from models import (
    Bill,
    Call,
    CallbackTask,
    Conversation,
    Customer,
    CustomerPhone,
    Message,
    Payment,
    Ticket,
    TicketEvent,
    WechatBinding,
)
from models.base import Base

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")

# Section → its sheet's title in the workbook the resident receives.
SECTIONS = {
    "accounts": "用水户档案", "phones": "联系电话", "bills": "账单", "payments": "缴费记录",
    "bindings": "微信绑定", "tickets": "工单", "ticket_events": "工单记录", "conversations": "会话",
    "messages": "消息", "calls": "通话记录", "callbacks": "回访",
}


def _value(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _row(obj: Base) -> dict[str, Any]:
    return {c.key: _value(getattr(obj, c.key)) for c in obj.__table__.columns}


async def _rows(session: AsyncSession, model: type[Base], condition: Any, order: Any) -> list[dict[str, Any]]:
    return [_row(o) for o in (await session.execute(select(model).where(condition).order_by(order))).scalars()]


async def collect(session: AsyncSession, r: Resident, now: dt.datetime) -> dict[str, Any]:
    """Everything about the resident, section by section."""
    data: dict[str, Any] = {"generated_at": now.isoformat(), "subject": {"kind": r.kind, "value": r.value}}
    data["accounts"] = await _rows(session, Customer, Customer.id.in_(r.customer_ids), Customer.id)
    data["phones"] = await _rows(session, CustomerPhone, CustomerPhone.customer_id.in_(r.customer_ids),
                                 CustomerPhone.id)
    data["bills"] = await _rows(session, Bill, Bill.customer_id.in_(r.customer_ids), Bill.period)
    data["payments"] = await _rows(session, Payment, Payment.customer_id.in_(r.customer_ids), Payment.paid_at)
    data["bindings"] = await _rows(session, WechatBinding, WechatBinding.openid.in_(r.openids)
                                   | WechatBinding.customer_id.in_(r.customer_ids if r.kind == "account" else set()),
                                   WechatBinding.id)
    data["tickets"] = await _rows(session, Ticket, Ticket.id.in_(r.ticket_ids), Ticket.id)
    data["ticket_events"] = await _rows(session, TicketEvent, TicketEvent.ticket_id.in_(r.ticket_ids), TicketEvent.id)
    data["conversations"] = await _rows(session, Conversation, Conversation.id.in_(r.conversation_ids),
                                        Conversation.id)
    data["messages"] = await _rows(session, Message, Message.conversation_id.in_(r.conversation_ids), Message.id)
    data["calls"] = await _rows(session, Call, Call.id.in_(r.call_ids), Call.id)
    data["callbacks"] = await _rows(session, CallbackTask, CallbackTask.id.in_(r.callback_task_ids), CallbackTask.id)
    return data


def to_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")


def _cell(value: Any) -> Any:
    """A value as a cell: structures as JSON text; text that Excel would take for a formula stays text."""
    if value is not None and not isinstance(value, str | int | float | bool):
        value = json.dumps(value, ensure_ascii=False)
    if isinstance(value, str):
        value = _CONTROL.sub("", value)  # a workbook cannot hold them (openpyxl refuses the whole sheet)
        if value.startswith(("=", "+", "-", "@")):
            value = "'" + value
    return value


def to_xlsx(data: dict[str, Any]) -> bytes:
    """One sheet per section, its columns named as the store names them."""
    from openpyxl import Workbook  # type: ignore[import-untyped]
    from openpyxl.styles import Font  # type: ignore[import-untyped]

    book = Workbook()
    first = True
    for key, title in SECTIONS.items():
        sheet = book.active if first else book.create_sheet()
        first = False
        sheet.title = title
        rows: list[dict[str, Any]] = data.get(key, [])
        columns = list(rows[0]) if rows else []
        sheet.append(columns)
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in rows:
            sheet.append([_cell(row[c]) for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
