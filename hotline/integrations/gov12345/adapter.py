"""12345 work orders as tickets, and every step the utility takes as a message back to 12345.

Inbound (pushed by 12345, already verified by the channel's views): an order
becomes a ticket through the lifecycle's door, with channel gov12345, the order
number as its external reference and the stricter of 12345's limits and ours;
chases, decisions on our requests, 12345's own callback result and re-dispatches
change the ticket through the same door, acting as the 12345 actor.

Outbound: the lifecycle's change listener (`on_change`) and action guard
(`guard`) write outbox rows in the transaction of the change; the outbox worker
sends them (transport.py). Nothing here does I/O outside the database.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from hotline.actors import Actor
from hotline.callbacks import tasks as callback_tasks
from hotline.integrations import outbox
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import Forbidden, InvalidTransition, Step, TicketDraft, TicketError
from hotline.tickets.routing import Router
from models import CallbackTask, Department, Gov12345Order, Ticket
from models.ticket import OPEN_STATUSES

CHANNEL = "gov12345"
TARGET = "gov12345"
GOV12345 = Actor(kind="system", name="12345热线")

# The first of these taken by a person on an unsigned order signs for it (签收) first.
SIGNING_ACTIONS = frozenset({"assign", "reroute", "start", "arrive", "resolve", "request_extension"})


class OrderError(Exception):
    """A push that cannot be applied; `status` is what 12345 is answered."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def is_order(ticket: Ticket) -> bool:
    return ticket.channel == CHANNEL and bool(ticket.external_ref)


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value else None


def _history(order: Gov12345Order, now: dt.datetime, kind: str, **data: Any) -> None:
    order.history = [*order.history, {"at": now.isoformat(), "kind": kind, **data}]
    order.updated_at = now


def send(session: AsyncSession, ticket: Ticket, kind: str, now: dt.datetime, **fields: Any) -> None:
    """One message to 12345 about this ticket's order, in the caller's transaction."""
    assert ticket.external_ref
    outbox.enqueue(session, TARGET, kind, ticket.external_ref, {"order_no": ticket.external_ref, **fields}, now,
                   ticket_id=ticket.id)


async def order_of(session: AsyncSession, ticket_id: int) -> Gov12345Order | None:
    return (await session.execute(select(Gov12345Order).where(Gov12345Order.ticket_id == ticket_id))
            ).scalar_one_or_none()


SILENT = "gov12345_silent"  # session.info: tickets whose order 12345 took back (set by the guard)
LEAVE_CALLBACK = "gov12345_leave_callback"  # session.info: (ticket id, resolution) whose survey 12345 does


async def sign(session: AsyncSession, order: Gov12345Order, ticket: Ticket, now: dt.datetime) -> None:
    """签收: the utility takes the order; 12345 measures it against the sign-for limit."""
    dept = await session.get(Department, ticket.department_id)
    order.signed_at = now
    _history(order, now, "signed")
    send(session, ticket, "sign", now, signed_at=now.isoformat(), unit=dept.name if dept else "",
         on_time=now <= order.sign_due_at)


def apply_limits(ticket: Ticket, router: Router, sign_due_at: dt.datetime | None,
                 due_at: dt.datetime | None) -> None:
    """The stricter of 12345's limits and ours; escalation is re-armed on the result."""
    if sign_due_at is not None:
        ticket.response_due_at = min(ticket.response_due_at, sign_due_at)
    if due_at is not None:
        ticket.resolution_due_at = min(ticket.resolution_due_at, due_at)
        ticket.response_due_at = min(ticket.response_due_at, ticket.resolution_due_at)
    if ticket.status not in OPEN_STATUSES:
        ticket.next_escalation_at = None
        return
    steps = router.escalation_times(ticket.clock_started_at, ticket.response_due_at, ticket.resolution_due_at,
                                    ticket.on_site_due_at)
    ticket.next_escalation_at = steps[ticket.escalation_level][0] if ticket.escalation_level < len(steps) else None


# ---- outbound: the lifecycle's hooks ------------------------------------------------------------------

def on_change(session: AsyncSession, ticket: Ticket, evt: Any) -> None:
    """The lifecycle's change listener: a step the utility took becomes its message to 12345."""
    if not is_order(ticket) or (evt.actor_kind == GOV12345.kind and evt.actor_name == GOV12345.name):
        return  # not a 12345 order, or 12345's own doing: nothing to tell it
    if ticket.id in session.sync_session.info.get(SILENT, ()):
        return  # 12345 took the order back: it hears nothing more about it
    now, action, note = evt.at, evt.action, evt.note
    if action == "start":
        send(session, ticket, "progress", now, note=note or "已开始处理", at=now.isoformat())
    elif action == "arrive":
        send(session, ticket, "progress", now, note=note or "处理人员已到达现场", at=now.isoformat())
    elif action == "resolve":
        send(session, ticket, "reply", now, content=note, resolved_at=now.isoformat())
        _leave_callback_to_12345(session, ticket)
    elif action == "request_extension":
        send(session, ticket, "extension", now, reason=note, due_at=evt.data.get("due_at"))
    elif action == "hold" and evt.data.get("action") == "return":
        send(session, ticket, "return", now, reason=note)


def _leave_callback_to_12345(session: AsyncSession, ticket: Ticket) -> None:
    """12345 makes its own callback: the resolution's task waits for its result instead of asking the resident
    a second time (the callback scheduler only takes tasks with a next attempt). The listener may not do I/O,
    so the task is changed just before the transaction commits (`_before_commit`)."""
    session.sync_session.info.setdefault(LEAVE_CALLBACK, set()).add((ticket.id, ticket.reopen_count))


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    for ticket_id, resolution in session.info.pop(LEAVE_CALLBACK, ()):
        session.execute(update(CallbackTask).where(
            CallbackTask.ticket_id == ticket_id, CallbackTask.resolution == resolution,
            CallbackTask.state.in_(callback_tasks.OPEN_STATES))
            .values(next_attempt_at=None, note="由12345热线回访，等待12345回访结果"))
    session.info.pop(SILENT, None)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(LEAVE_CALLBACK, None)
    session.info.pop(SILENT, None)


async def guard(step: Step, action: str) -> str | None:
    """The lifecycle's action guard for 12345 orders: sign first, 12345 decides extensions and returns."""
    ticket = step.ticket
    if not is_order(ticket) or step.actor == GOV12345 or action == "comment":
        return None
    order = await order_of(step.session, ticket.id)
    if order is None:
        return None
    if order.state != "open":
        step.session.sync_session.info.setdefault(SILENT, set()).add(ticket.id)
        return None
    if action in ("approve_extension", "reject_extension"):
        raise Forbidden("12345工单的延期由12345热线审批，审批结果会自动更新", "decided_by_gov12345")
    if action == "return":
        if not step.note:
            raise TicketError("a return needs a reason", "missing_note")
        if order.pending_request == "return":
            raise InvalidTransition("退单申请已提交，等待12345审批", "gov12345_pending")
        order.pending_request, order.pending_reason = "return", step.note
        _history(order, step.now, "return_requested", reason=step.note)
        return CHANNEL  # held: applied when 12345 approves
    if order.signed_at is None and action in SIGNING_ACTIONS:
        await sign(step.session, order, ticket, step.now)
    if action == "request_extension":
        order.pending_request, order.pending_reason = "extension", step.note
        _history(order, step.now, "extension_requested", reason=step.note)
    return None


def install() -> None:
    """Hook into the lifecycle once (idempotent)."""
    if on_change not in lifecycle.CHANGE_LISTENERS:
        lifecycle.CHANGE_LISTENERS.append(on_change)
    if guard not in lifecycle.ACTION_GUARDS:
        lifecycle.ACTION_GUARDS.append(guard)


# ---- inbound: what 12345 pushes -----------------------------------------------------------------------

async def find(session: AsyncSession, order_no: str, *, for_update: bool = True) -> tuple[Gov12345Order, Ticket]:
    order = (await session.execute(select(Gov12345Order).where(Gov12345Order.order_no == order_no))
             ).scalar_one_or_none()
    if order is None:
        raise OrderError(404, "unknown_order", f"no order {order_no!r}")
    stmt = select(Ticket).where(Ticket.id == order.ticket_id)
    if for_update and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return order, (await session.execute(stmt)).scalar_one()


async def existing_ticket(session: AsyncSession, order_no: str) -> str | None:
    return (await session.execute(select(Ticket.number).join(Gov12345Order, Gov12345Order.ticket_id == Ticket.id)
                                  .where(Gov12345Order.order_no == order_no))).scalar_one_or_none()


async def accept_order(session: AsyncSession, router: Router, types: dict[str, str], unrouted: str,
                       order: dict[str, Any], raw: dict[str, Any], now: dt.datetime) -> tuple[str, bool]:
    """A dispatched order → its ticket number, and whether it is new; a repeated push changes nothing."""
    number = await existing_ticket(session, order["order_no"])
    if number is not None:
        return number, False
    business_type = types.get(order["type"])
    routed = business_type is not None
    code = business_type or unrouted
    spec = router.business_type(code)
    title, content = order["title"], order["content"]
    description = f"{title}\n{content}" if title and title not in content else content
    draft = TicketDraft(
        category=spec.category, business_type=code, channel=CHANNEL,
        priority="urgent" if order["urgency"] == "urgent" else None, description=description,
        phone=order["phone"], contact_name=order["caller"], address=order["address"],
        extra={"gov12345": {"order_no": order["order_no"], "type": order["type"], "routed": routed,
                            "sign_due_at": order["sign_due_at"].isoformat(),
                            "due_at": order["due_at"].isoformat()}})
    ticket = await lifecycle.create_ticket(session, router, draft, GOV12345, now)
    ticket.external_ref = order["order_no"]
    apply_limits(ticket, router, order["sign_due_at"], order["due_at"])
    row = Gov12345Order(order_no=order["order_no"], ticket_id=ticket.id, type=order["type"], routed=routed,
                        urgency=order["urgency"], accepted_at=order["accepted_at"],
                        sign_due_at=order["sign_due_at"], due_at=order["due_at"], payload=raw,
                        history=[{"at": now.isoformat(), "kind": "dispatched"}], created_at=now, updated_at=now)
    session.add(row)
    for url in order["attachments"]:
        lifecycle._attach(session, ticket, GOV12345, "link", url, None, now)  # the lifecycle's attachment door
    await session.flush()
    if routed:
        await sign(session, row, ticket, now)
    else:
        _, intake_supervisor = await lifecycle._department(session, router.spec.intake_department)
        lifecycle.notify(session, ticket, [intake_supervisor], "gov12345_unrouted",
                         f"12345工单 {order['order_no']}（诉求类型“{order['type']}”未配置）待人工派单，"
                         f"签收时限 {_local(router, order['sign_due_at'])}", now)
    return ticket.number, True


def _local(router: Router, moment: dt.datetime) -> str:
    return moment.astimezone(router.calendar.timezone).strftime("%Y-%m-%d %H:%M")


async def chase(session: AsyncSession, router: Router, order_no: str, content: str, now: dt.datetime) -> Ticket:
    """催办: an escalation step on the ticket and a live notice to its supervisor (and assignee)."""
    order, ticket = await find(session, order_no)
    order.chases += 1
    order.last_chased_at = now
    _history(order, now, "chase", content=content)
    message = f"12345催办（第{order.chases}次）工单 {ticket.number}：{content or '请尽快办理'}，" \
              f"办理时限 {_local(router, ticket.resolution_due_at)}"
    recipients = lifecycle.notify(session, ticket, [ticket.supervisor_id, ticket.assignee_id], "gov12345_chase",
                                  message, now)
    lifecycle._event(session, ticket, GOV12345, "escalate", now, ticket.status,  # the lifecycle's audit door
                     note=f"12345催办：{content}" if content else "12345催办",
                     data={"step": "gov12345_chase", "chases": order.chases, "notified": recipients})
    return ticket


async def decide(session: AsyncSession, router: Router, order_no: str, request: str, approved: bool,
                 note: str, due_at: dt.datetime | None, now: dt.datetime) -> Ticket:
    """12345's decision on our extension or return request."""
    order, ticket = await find(session, order_no)
    if request == "extension":
        if ticket.extension_due_at is None:
            raise OrderError(409, "no_pending_request", f"order {order_no} has no extension request pending")
        if approved:
            if due_at is not None:
                ticket.extension_due_at = due_at  # 12345 may grant another date than the one asked for
            await lifecycle.transition(session, router, ticket, "approve_extension", GOV12345, now,
                                       note=note or "12345同意延期")
            order.due_at = ticket.resolution_due_at
        else:
            await lifecycle.transition(session, router, ticket, "reject_extension", GOV12345, now,
                                       note=note or "12345不同意延期")
    else:
        if order.pending_request != "return":
            raise OrderError(409, "no_pending_request", f"order {order_no} has no return request pending")
        reason = order.pending_reason or ""
        if approved:
            await lifecycle.transition(session, router, ticket, "return", GOV12345, now,
                                       note=f"12345同意退单：{reason}" + (f"（{note}）" if note else ""))
            order.state = "returned"
        else:
            await lifecycle.transition(session, router, ticket, "comment", GOV12345, now,
                                       note="12345不同意退单" + (f"：{note}" if note else "") + "，请继续办理")
            lifecycle.notify(session, ticket, [ticket.supervisor_id, ticket.assignee_id], "gov12345_return_refused",
                             f"12345不同意工单 {ticket.number} 退单{('：' + note) if note else ''}，请继续办理", now)
    _history(order, now, f"{request}_{'approved' if approved else 'refused'}", note=note,
             due_at=_iso(due_at))
    if order.pending_request == request:
        order.pending_request = order.pending_reason = order.pending_message_id = None
    return ticket


async def satisfaction(session: AsyncSession, router: Router, order_no: str, word: str, answer: str, note: str,
                       now: dt.datetime) -> Ticket:
    """12345's own callback result, recorded as the ticket's callback; 不满意 reopens it (重办), chased at once."""
    order, ticket = await find(session, order_no)
    order.satisfaction = word
    _history(order, now, "satisfaction", result=word, note=note)
    task = (await session.execute(select(CallbackTask).where(
        CallbackTask.ticket_id == ticket.id, CallbackTask.resolution == ticket.reopen_count))).scalar_one_or_none()
    if ticket.status == "resolved" and task is not None and task.state in callback_tasks.OPEN_STATES:
        callback_tasks.add_attempt(task, CHANNEL, now, answer)
        await callback_tasks.record_answer(session, router, task, answer, GOV12345, now,
                                           note=f"12345回访：{word}" + (f"，{note}" if note else ""))
    return ticket


async def redispatch(session: AsyncSession, router: Router, order_no: str, reason: str,
                     due_at: dt.datetime | None, sign_due_at: dt.datetime | None, now: dt.datetime) -> Ticket:
    """重办: the order comes back after dissatisfaction; the ticket is reopened, chased and signed for again."""
    order, ticket = await find(session, order_no)
    order.redispatches += 1
    order.state = "open"
    order.due_at = due_at or order.due_at
    order.sign_due_at = sign_due_at or now
    _history(order, now, "redispatch", reason=reason, due_at=_iso(due_at))
    note = f"12345重办：{reason}" if reason else "12345重办"
    reopened = False
    if ticket.status == "resolved":
        task = (await session.execute(select(CallbackTask).where(
            CallbackTask.ticket_id == ticket.id, CallbackTask.resolution == ticket.reopen_count))
        ).scalar_one_or_none()
        if task is not None and task.state in callback_tasks.OPEN_STATES:
            await callback_tasks.record_answer(session, router, task, "dissatisfied", GOV12345, now, note=note)
        else:
            await lifecycle.transition(session, router, ticket, "callback", GOV12345, now, note=note, reached=True,
                                       satisfaction=1, result="dissatisfied")
            await lifecycle.transition(session, router, ticket, "reopen", GOV12345, now, note=note)
            lifecycle.escalate_reopened(session, router, ticket, now)
        reopened = True
    elif ticket.status == "callback":
        await lifecycle.transition(session, router, ticket, "reopen", GOV12345, now, note=note)
        lifecycle.escalate_reopened(session, router, ticket, now)
        reopened = True
    elif ticket.status == "closed":
        # Archived after a satisfied callback: the lifecycle cannot reopen it; a person decides.
        _, intake_supervisor = await lifecycle._department(session, router.spec.intake_department)
        lifecycle.notify(session, ticket, [intake_supervisor, ticket.supervisor_id], "gov12345_redispatch",
                         f"12345要求重办已归档工单 {ticket.number}（{order_no}）：{reason}，请人工处理", now)
        lifecycle._event(session, ticket, GOV12345, "escalate", now, ticket.status, note=note,
                         data={"step": "gov12345_redispatch", "notified": []})
        return ticket
    apply_limits(ticket, router, sign_due_at, due_at)
    if not reopened:
        recipients = lifecycle.notify(session, ticket, [ticket.supervisor_id, ticket.assignee_id],
                                      "gov12345_redispatch", f"12345要求重办工单 {ticket.number}：{reason}", now)
        lifecycle._event(session, ticket, GOV12345, "escalate", now, ticket.status, note=note,
                         data={"step": "gov12345_redispatch", "notified": recipients})
    order.signed_at = None
    if order.routed or ticket.department_id != (await lifecycle._department(
            session, router.spec.intake_department))[0]:
        await sign(session, order, ticket, now)
    return ticket


def order_json(order: Gov12345Order, router: Router) -> dict[str, Any]:
    return {"order_no": order.order_no, "type": order.type, "routed": order.routed, "urgency": order.urgency,
            "accepted_at": _iso(order.accepted_at), "sign_due_at": _iso(order.sign_due_at),
            "due_at": _iso(order.due_at), "signed_at": _iso(order.signed_at),
            "pending_request": order.pending_request, "pending_reason": order.pending_reason,
            "chases": order.chases, "last_chased_at": _iso(order.last_chased_at),
            "satisfaction": order.satisfaction, "redispatches": order.redispatches, "state": order.state,
            "title": order.payload.get("title", ""), "history": order.history}
