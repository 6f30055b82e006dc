"""The one door for every ticket change.

create → assign → start → resolve → callback (回访) → close, with reopen from
callback, reroute while open, comments at any time, and escalation steps from
the scheduler. Each function validates, writes the change and its audit event
and queues the live event, all inside the caller's transaction; the IVR, the
bot's API calls, the console and the scheduler all come through here.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import RESIDENT, SYSTEM, Actor
from hotline.channels import registry as channels
from hotline.events import publish_on_commit
from hotline.tickets.numbering import next_ticket_number
from hotline.tickets.routing import EscalationStep, Route, Router
from models import (
    CallbackTask,
    Conversation,
    Customer,
    CustomerPhone,
    Department,
    Message,
    Notification,
    Staff,
    Ticket,
    TicketAttachment,
    TicketEvent,
)
from models.ticket import OPEN_STATUSES


class TicketError(Exception):
    """A refused request; `status` is the HTTP status the API answers with."""

    status = 422

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class InvalidTransition(TicketError):
    status = 409


class Forbidden(TicketError):
    status = 403


class NotFound(TicketError):
    status = 404


@dataclass(frozen=True)
class Transition:
    sources: frozenset[str]
    target: str | None  # None: the status stays, or the action decides it
    roles: frozenset[str]  # staff roles allowed; "service" for the API token
    label: str
    applies: Callable[[Ticket], bool] | None = None  # beyond the status: whether the action makes sense now
    offered: bool = True  # False: taken by the service itself, never offered to staff as a button


STAFF = frozenset({"agent", "supervisor", "department", "admin"})
TRANSITIONS: dict[str, Transition] = {
    "assign": Transition(frozenset({"new", "assigned", "in_progress"}), "assigned",
                         frozenset({"agent", "supervisor", "department", "admin"}), "派单"),
    "start": Transition(frozenset({"assigned"}), "in_progress",
                        frozenset({"supervisor", "department", "admin"}), "开始处理"),
    "resolve": Transition(frozenset({"in_progress"}), "resolved",
                          frozenset({"supervisor", "department", "admin"}), "办结"),
    "callback": Transition(frozenset({"resolved"}), "callback",
                           frozenset({"agent", "supervisor", "admin", "service"}), "回访"),
    "close": Transition(frozenset({"callback"}), "closed",
                        frozenset({"agent", "supervisor", "admin"}), "归档"),
    "reopen": Transition(frozenset({"callback"}), None,  # assigned, or new when nobody is assigned
                         frozenset({"agent", "supervisor", "admin"}), "重新处理"),
    "reroute": Transition(frozenset({"new", "assigned", "in_progress"}), "new",
                          frozenset({"agent", "supervisor", "admin"}), "转派"),
    "comment": Transition(frozenset({"new", "assigned", "in_progress", "resolved", "callback", "closed"}),
                          None, STAFF | {"service"}, "备注"),
    "arrive": Transition(frozenset({"assigned", "in_progress"}), "in_progress",
                         frozenset({"department", "supervisor", "admin"}), "到场",
                         lambda t: t.on_site_due_at is not None and t.arrived_at is None),
    "request_extension": Transition(frozenset(OPEN_STATUSES), None, frozenset({"department", "admin"}), "申请延期",
                                    lambda t: t.extension_due_at is None),
    "approve_extension": Transition(frozenset(OPEN_STATUSES), None, frozenset({"supervisor", "admin"}), "批准延期",
                                    lambda t: t.extension_due_at is not None),
    "reject_extension": Transition(frozenset(OPEN_STATUSES), None, frozenset({"supervisor", "admin"}), "驳回延期",
                                   lambda t: t.extension_due_at is not None),
    "return": Transition(frozenset(OPEN_STATUSES), "new", frozenset({"department", "admin"}), "退单"),
    "resolve_with_incident": Transition(frozenset(OPEN_STATUSES), "resolved", frozenset({"supervisor", "admin"}),
                                        "随事件办结", offered=False),  # only through an incident's end
    "raise_priority": Transition(frozenset(OPEN_STATUSES), None, frozenset({"supervisor", "admin"}), "提高紧急程度",
                                 lambda t: t.priority != "urgent"),
}

STATUS_LABELS = {"new": "待派单", "assigned": "已派单", "in_progress": "处理中",
                 "resolved": "已办结", "callback": "已回访", "closed": "已归档"}

_PHONE_RE = re.compile(r"^\+?[0-9]{5,20}$")


def normalize_phone(phone: str | None) -> str | None:
    if phone is None:
        return None
    digits = re.sub(r"[\s\-()]", "", phone)
    if not digits:
        return None
    if not _PHONE_RE.match(digits):
        raise TicketError(f"phone {phone!r} is not a telephone number", "invalid_phone")
    return digits


@dataclass
class TicketDraft:
    category: str
    description: str
    channel: str
    business_type: str | None = None
    priority: str | None = None
    account_number: str | None = None
    phone: str | None = None
    contact_name: str = ""
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    conversation_id: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _role(actor: Actor) -> str:
    if actor.kind == "service":
        return "service"
    return (actor.role or "") if actor.is_staff else actor.kind


def _check_role(actor: Actor, action: str, allowed: frozenset[str]) -> None:
    role = _role(actor)
    if actor.kind in ("system", "resident"):
        return  # the service itself, or acting on a resident's own answer (residents never reach the API)
    if role not in allowed:
        raise Forbidden(f"role {role!r} may not {action} a ticket", "forbidden")


def allowed_actions(actor: Actor, ticket: Ticket) -> list[str]:
    """The actions this actor may take on this ticket now, so a console offers only those."""
    role = _role(actor)
    return [name for name, spec in TRANSITIONS.items()
            if spec.offered and ticket.status in spec.sources and role in spec.roles
            and (spec.applies is None or spec.applies(ticket))]


def check_ticket_access(actor: Actor, ticket: Ticket) -> None:
    """Department staff see and work only their own department's tickets."""
    if actor.is_staff and actor.role == "department" and ticket.department_id != actor.department_id:
        raise NotFound(f"no ticket {ticket.number}", "not_found")


# Integrations hook in here (hotline/integrations/), so the lifecycle needs to know none of them.
#
# A change listener hears every audited change inside the transaction that makes it, right after its
# TicketEvent is added: what it writes (an outbox row for another system) commits or rolls back with the
# change. It must not do I/O; the ticket and the event are all it gets.
#
# An action guard runs before an action's own rules, with the step and the action's name. It may raise a
# TicketError to refuse the action, return None to let it run, or return the holder's name to hold it for
# an outside decision (a 12345 order's return waits for 12345): a held action changes nothing but is
# recorded as a "hold" event (data: the action and the holder) that listeners hear; when the decision
# comes, the holder applies the action itself through transition(), and its guard lets it pass.
ChangeListener = Callable[[AsyncSession, Ticket, TicketEvent], None]
ActionGuard = Callable[["Step", str], Awaitable[str | None]]
CHANGE_LISTENERS: list[ChangeListener] = []
ACTION_GUARDS: list[ActionGuard] = []


def _event(session: AsyncSession, ticket: Ticket, actor: Actor, action: str, now: dt.datetime,
           from_status: str | None, note: str = "", data: dict[str, Any] | None = None) -> TicketEvent:
    evt = TicketEvent(ticket_id=ticket.id, at=now, action=action, actor_kind=actor.kind,
                      actor_id=actor.id, actor_name=actor.name, from_status=from_status,
                      to_status=ticket.status, note=note, data=data or {})
    session.add(evt)
    for listener in CHANGE_LISTENERS:
        listener(session, ticket, evt)
    publish_on_commit(session, {
        "type": "ticket.changed", "action": action, "ticket": ticket.number,
        "ticket_id": ticket.id, "department_id": ticket.department_id, "conversation_id": ticket.conversation_id,
        "status": ticket.status, "at": now.isoformat(), "resolution_due_at": ticket.resolution_due_at.isoformat(),
    })
    return evt


def notify(session: AsyncSession, ticket: Ticket, staff_ids: Sequence[int | None], kind: str, message: str,
           now: dt.datetime) -> list[int]:
    """Notices (督办通知) to staff about a ticket, live after commit; returns who was told."""
    recipients = list(dict.fromkeys(i for i in staff_ids if i is not None))
    for staff_id in recipients:
        session.add(Notification(staff_id=staff_id, ticket_id=ticket.id, kind=kind, message=message,
                                 created_at=now))
    if recipients:
        publish_on_commit(session, {"type": "notification", "kind": kind, "ticket": ticket.number,
                                    "staff_ids": recipients, "message": message})
    return recipients


_DEPARTMENT_TTL = dt.timedelta(seconds=60)
_department_cache: dict[tuple[str, str], tuple[dt.datetime, int, int | None]] = {}


async def _department(session: AsyncSession, code: str) -> tuple[int, int | None]:
    """(id, supervisor id) of a department, cached for a minute: it is read on every
    create and changes only when the routing file or a supervisor changes."""
    bind = session.get_bind()
    key = (str(bind.engine.url), code)
    now = dt.datetime.now(dt.UTC)
    hit = _department_cache.get(key)
    if hit and hit[0] > now:
        return hit[1], hit[2]
    row = (await session.execute(select(Department.id, Department.supervisor_id)
                                 .where(Department.code == code))).first()
    if row is None:
        raise TicketError(f"department {code!r} is not in the database; restart the service to sync "
                          "the routing file", "unknown_department")
    _department_cache[key] = (now + _DEPARTMENT_TTL, row[0], row[1])
    return row[0], row[1]


def forget_departments() -> None:
    """Called after the departments table changes."""
    _department_cache.clear()


def _apply_route(ticket: Ticket, route: Route, dept: tuple[int, int | None]) -> None:
    """Department, supervisor and due times from a route; the caller re-arms escalation."""
    ticket.category = route.category
    ticket.business_type = route.business_type
    ticket.priority = route.priority
    ticket.department_id, ticket.supervisor_id = dept
    ticket.response_due_at = route.response_due_at
    ticket.resolution_due_at = route.resolution_due_at
    if ticket.arrived_at is None:
        ticket.on_site_due_at = route.on_site_due_at
    ticket.escalation_level = 0


def _steps(router: Router, ticket: Ticket) -> list[tuple[dt.datetime, EscalationStep]]:
    return router.escalation_times(ticket.clock_started_at, ticket.response_due_at, ticket.resolution_due_at,
                                   ticket.on_site_due_at)


def rearm_escalation(ticket: Ticket, router: Router) -> None:
    """After a change made outside a transition (an incident releasing its reports)."""
    _arm_escalation(ticket, router)


def _arm_escalation(ticket: Ticket, router: Router) -> None:
    """Point next_escalation_at at the next step still to come, or at nothing."""
    if ticket.status not in OPEN_STATUSES:
        ticket.next_escalation_at = None
        return
    steps = _steps(router, ticket)
    ticket.next_escalation_at = steps[ticket.escalation_level][0] if ticket.escalation_level < len(steps) else None


async def _find_customer(session: AsyncSession, draft: TicketDraft) -> Any:
    """The account a ticket is about: by account number, else by a phone that only one account has."""
    columns = select(Customer.id, Customer.account_number, Customer.name, Customer.address)
    if draft.account_number:
        row = (await session.execute(columns.where(Customer.account_number == draft.account_number))).first()
        if row is None:
            raise TicketError(f"unknown account number {draft.account_number!r}", "unknown_account")
        return row
    if draft.phone:
        rows = (await session.execute(
            columns.join(CustomerPhone).where(CustomerPhone.phone == draft.phone).limit(2))).all()
        if len(rows) == 1:
            return rows[0]
    return None


async def create_ticket(session: AsyncSession, router: Router, draft: TicketDraft, actor: Actor,
                        now: dt.datetime) -> Ticket:
    if actor.kind not in ("service", "system") and actor.is_staff and actor.role == "department":
        raise Forbidden("department staff do not create tickets", "forbidden")
    description = draft.description.strip()
    if not description:
        raise TicketError("description must not be empty", "invalid_description")
    try:
        channels.check_name(draft.channel)
    except ValueError as exc:
        raise TicketError(str(exc), "invalid_channel") from None
    draft.phone = normalize_phone(draft.phone)
    try:
        route = router.route(draft.category, draft.business_type, draft.priority, now)
    except ValueError as exc:
        raise TicketError(str(exc), "invalid_routing") from exc
    customer = await _find_customer(session, draft)
    dept = await _department(session, route.department)
    number = await next_ticket_number(session, router.calendar.local_date(now))
    ticket = Ticket(
        number=number, channel=draft.channel, status="new", description=description,
        customer_id=customer.id if customer else None,
        account_number=customer.account_number if customer else None,
        contact_name=draft.contact_name or (customer.name if customer else ""),
        contact_phone=draft.phone, address=draft.address or (customer.address if customer else ""),
        latitude=draft.latitude, longitude=draft.longitude, conversation_id=draft.conversation_id,
        created_at=now, updated_at=now, clock_started_at=now,
    )
    _apply_route(ticket, route, dept)
    _arm_escalation(ticket, router)
    session.add(ticket)
    await session.flush()
    _event(session, ticket, actor, "create", now, None, data={
        "department": route.department, "business_type": route.business_type,
        "priority": route.priority, "response_due_at": route.response_due_at.isoformat(),
        "resolution_due_at": route.resolution_due_at.isoformat(), **draft.extra})
    if draft.conversation_id:
        await _attach_conversation_media(session, ticket, draft.conversation_id, now)
    return ticket


async def link_conversation(session: AsyncSession, ticket: Ticket, conversation_id: int, actor: Actor,
                            now: dt.datetime) -> Ticket:
    """An agent ties a conversation to an existing ticket (e.g. a resident asking about their report)."""
    _check_role(actor, "link", frozenset({"agent", "supervisor", "admin"}))
    check_ticket_access(actor, ticket)
    if ticket.conversation_id == conversation_id:
        return ticket
    if ticket.conversation_id is not None:
        raise InvalidTransition(f"ticket {ticket.number} belongs to conversation {ticket.conversation_id}",
                                "linked_elsewhere")
    ticket.conversation_id = conversation_id
    ticket.updated_at = now
    await _attach_conversation_media(session, ticket, conversation_id, now)
    _event(session, ticket, actor, "link", now, ticket.status, data={"conversation_id": conversation_id})
    return ticket


MEDIA_KINDS = ("image", "voice")


async def _attach_conversation_media(session: AsyncSession, ticket: Ticket, conversation_id: int,
                                     now: dt.datetime) -> None:
    """Photos and voice messages the resident already sent in the conversation go with its ticket."""
    media = (await session.execute(select(Message).where(
        Message.conversation_id == conversation_id, Message.kind.in_(MEDIA_KINDS),
        Message.direction == "in"))).scalars().all()
    for msg in media:
        attach_media(session, ticket, msg, now)


def attach_recording(session: AsyncSession, ticket: Ticket, uri: str, now: dt.datetime,
                     actor: Actor = SYSTEM) -> None:
    """A caller's voicemail becomes part of the ticket's record."""
    _attach(session, ticket, actor, "voice", uri, None, now)


def attach_media(session: AsyncSession, ticket: Ticket, message: Message, now: dt.datetime,
                 actor: Actor = RESIDENT) -> None:
    """A resident's photo or voice message becomes part of the ticket's record."""
    uri = message.payload.get("pic_url") or f"{message.channel}-media:{message.payload.get('media_id', '')}"
    _attach(session, ticket, actor, message.kind, uri, message.payload.get("media_id"), now,
            message_id=message.id)


def _attach(session: AsyncSession, ticket: Ticket, actor: Actor, kind: str, uri: str, media_id: str | None,
            now: dt.datetime, **data: Any) -> None:
    """The one door for attachments: the row, its audit event and its live event."""
    session.add(TicketAttachment(ticket_id=ticket.id, kind=kind, uri=uri, media_id=media_id, created_at=now))
    _event(session, ticket, actor, "attach", now, ticket.status, data={"kind": kind, "uri": uri, **data})


async def get_ticket(session: AsyncSession, number: str, actor: Actor, *, for_update: bool = False) -> Ticket:
    stmt = select(Ticket).where(Ticket.number == number)
    if for_update and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    ticket = (await session.execute(stmt)).scalar_one_or_none()
    if ticket is None:
        raise NotFound(f"no ticket {number}", "not_found")
    check_ticket_access(actor, ticket)
    return ticket


@dataclass
class Step:
    """One action in progress: what every `_do_*` function works on."""

    session: AsyncSession
    router: Router
    ticket: Ticket
    actor: Actor
    now: dt.datetime
    note: str


def check_transition(ticket: Ticket, action: str, actor: Actor) -> Transition:
    """The shared check step: the action exists, the actor's role may take it, the ticket is in a source status."""
    spec = TRANSITIONS.get(action)
    if spec is None:
        raise TicketError(f"unknown action {action!r}; expected one of {', '.join(TRANSITIONS)}",
                          "unknown_action")
    _check_role(actor, action, spec.roles)
    check_ticket_access(actor, ticket)
    if ticket.status not in spec.sources:
        raise InvalidTransition(
            f"ticket {ticket.number} is {ticket.status}; {action} needs one of {', '.join(sorted(spec.sources))}",
            "invalid_transition")
    return spec


async def _do_assign(step: Step, *, assignee: str | None = None, **_: Any) -> dict[str, Any]:
    if not assignee:
        raise TicketError("assign needs an assignee (a staff username)", "missing_assignee")
    staff = (await step.session.execute(select(Staff).where(Staff.username == assignee))).scalar_one_or_none()
    if staff is None or not staff.active:
        raise TicketError(f"no active staff member {assignee!r}", "unknown_assignee")
    actor, ticket = step.actor, step.ticket
    if actor.is_staff and actor.role == "department" and staff.department_id != ticket.department_id:
        raise Forbidden("department staff assign only within their department", "forbidden")
    ticket.assignee_id = staff.id
    ticket.responded_at = ticket.responded_at or step.now
    return {"assignee": staff.username, "assignee_name": staff.display_name}


async def _do_start(step: Step, **_: Any) -> dict[str, Any]:
    return {}


async def _do_resolve(step: Step, **_: Any) -> dict[str, Any]:
    if not step.note:
        raise TicketError("resolve needs a note saying what was done", "missing_note")
    ticket = step.ticket
    ticket.resolved_at = step.now
    ticket.callback_due_at = step.router.callback_due(step.now)
    ticket.callback_result = None
    ticket.extension_due_at = ticket.extension_reason = ticket.extension_requested_by = None
    await _open_callback_task(step)
    return {"callback_due_at": ticket.callback_due_at.isoformat()}


async def _open_callback_task(step: Step) -> CallbackTask:
    """Every resolution gets its callback (回访): on the resident's own channel when there is one."""
    ticket, router, session = step.ticket, step.router, step.session
    assert ticket.callback_due_at is not None
    conv = await session.get(Conversation, ticket.conversation_id) if ticket.conversation_id else None
    task = CallbackTask(
        ticket_id=ticket.id, resolution=ticket.reopen_count, channel=ticket.channel,
        conversation_id=conv.id if conv else None, resident_channel=conv.channel if conv else None,
        external_user=conv.external_user if conv else None, state="pending", due_at=ticket.callback_due_at,
        expires_at=router.calendar.add_working_days(ticket.callback_due_at, router.callback_expire_working_days),
        next_attempt_at=ticket.callback_due_at, attempts=[], created_at=step.now)
    session.add(task)
    await session.flush()
    publish_on_commit(session, {"type": "callback.changed", "task_id": task.id, "ticket": ticket.number,
                                "state": task.state, "manual": False})
    return task


# The survey's answers as a 1-5 satisfaction, and back.
ANSWER_SATISFACTION = {"satisfied": 5, "basically_satisfied": 3, "dissatisfied": 1}


def _answer_of(reached: bool, satisfaction: int | None) -> str:
    if not reached:
        return "unreachable"
    if satisfaction is None:
        return "unclear"
    return "satisfied" if satisfaction >= 4 else "basically_satisfied" if satisfaction == 3 else "dissatisfied"


async def _do_callback(step: Step, *, reached: bool | None = None, satisfaction: int | None = None,
                       result: str | None = None, **_: Any) -> dict[str, Any]:
    """The callback's result; it also settles the resolution's callback task, however it was reached."""
    if reached is None:
        raise TicketError("callback needs reached: true or false", "missing_reached")
    if reached and satisfaction is None:
        raise TicketError("callback needs a satisfaction rating from 1 to 5 when the resident was reached",
                          "missing_satisfaction")
    if satisfaction is not None and not 1 <= satisfaction <= 5:
        raise TicketError("satisfaction must be from 1 to 5", "invalid_satisfaction")
    ticket = step.ticket
    ticket.callback_at = step.now
    ticket.callback_result = step.note or ("已回访" if reached else "未联系上")
    ticket.satisfaction = satisfaction
    answer = result or _answer_of(reached, satisfaction)
    task = (await step.session.execute(select(CallbackTask).where(
        CallbackTask.ticket_id == ticket.id, CallbackTask.resolution == ticket.reopen_count))).scalar_one_or_none()
    if task is not None and task.state in ("pending", "in_progress"):
        task.state = "answered" if reached else "unreachable"
        task.result, task.answered_at, task.answered_by = answer, step.now, step.actor.name
        task.next_attempt_at, task.manual = None, False
        task.note = step.note
        publish_on_commit(step.session, {"type": "callback.changed", "task_id": task.id, "ticket": ticket.number,
                                         "state": task.state, "manual": False})
    return {"reached": reached, "satisfaction": satisfaction, "result": answer}


async def _do_close(step: Step, **_: Any) -> dict[str, Any]:
    step.ticket.closed_at = step.now
    return {}


async def _do_reopen(step: Step, **_: Any) -> dict[str, Any]:
    if not step.note:
        raise TicketError("reopen needs a note saying why the resident is not satisfied", "missing_note")
    ticket, now = step.ticket, step.now
    # Reopened work gets a fresh clock; the original creation time stays on record.
    route = step.router.route(ticket.category, ticket.business_type, ticket.priority, now)
    ticket.reopen_count += 1
    ticket.resolved_at = None
    ticket.callback_due_at = None
    ticket.clock_started_at = now
    ticket.response_due_at, ticket.resolution_due_at = route.response_due_at, route.resolution_due_at
    ticket.on_site_due_at, ticket.arrived_at = route.on_site_due_at, None
    ticket.escalation_level = 0
    ticket.status = "assigned" if ticket.assignee_id else "new"
    return {"resolution_due_at": route.resolution_due_at.isoformat()}


async def _do_reroute(step: Step, *, category: str | None = None, business_type: str | None = None,
                      priority: str | None = None, **_: Any) -> dict[str, Any]:
    if business_type is None and category is None and priority is None:
        raise TicketError("reroute needs a new category, business_type or priority", "missing_route")
    ticket, router = step.ticket, step.router
    try:
        if business_type:
            new_category: str = router.business_type(business_type).category
            if category and category != new_category:
                raise TicketError(f"business_type {business_type!r} belongs to category "
                                  f"{new_category!r}, not {category!r}", "invalid_routing")
        else:
            new_category = category or str(ticket.category)
            business_type = ticket.business_type if new_category == ticket.category else None
        # The resident's clock does not restart because the work moved inside the utility.
        route = router.route(new_category, business_type, priority, ticket.clock_started_at)
    except ValueError as exc:
        raise TicketError(str(exc), "invalid_routing") from exc
    dept = await _department(step.session, route.department)
    data = {"from_department_id": ticket.department_id, "department": route.department,
            "business_type": route.business_type, "priority": route.priority}
    ticket.assignee_id = None
    _apply_route(ticket, route, dept)
    return data


async def _do_comment(step: Step, **_: Any) -> dict[str, Any]:
    if not step.note:
        raise TicketError("a comment needs text", "missing_note")
    return {}


async def _do_resolve_with_incident(step: Step, **kwargs: Any) -> dict[str, Any]:
    """Restoration of an incident resolves each of its reports, whatever stage it was at."""
    return {**await _do_resolve(step, **kwargs), "incident": True}


async def _do_raise_priority(step: Step, **_: Any) -> dict[str, Any]:
    """Urgent from now: the urgent limits, counted from the ticket's clock, where they are shorter."""
    ticket, router = step.ticket, step.router
    route = router.route(ticket.category, ticket.business_type, "urgent", ticket.clock_started_at)
    ticket.priority = "urgent"
    ticket.response_due_at = min(ticket.response_due_at, route.response_due_at)
    ticket.resolution_due_at = min(ticket.resolution_due_at, route.resolution_due_at)
    if route.on_site_due_at and ticket.arrived_at is None:
        ticket.on_site_due_at = min(filter(None, (ticket.on_site_due_at, route.on_site_due_at)))
    ticket.escalation_level = sum(1 for moment, _ in _steps(router, ticket) if moment <= step.now)
    return {"resolution_due_at": ticket.resolution_due_at.isoformat()}


async def _do_arrive(step: Step, **_: Any) -> dict[str, Any]:
    """The repair crew is on site (到场); measured against the on-site limit."""
    ticket = step.ticket
    ticket.arrived_at = step.now
    ticket.responded_at = ticket.responded_at or step.now
    assert ticket.on_site_due_at is not None
    return {"on_time": step.now <= ticket.on_site_due_at, "on_site_due_at": ticket.on_site_due_at.isoformat()}


def _local(router: Router, moment: dt.datetime) -> str:
    return moment.astimezone(router.calendar.timezone).strftime("%Y-%m-%d %H:%M")


async def _do_request_extension(step: Step, *, due_at: dt.datetime | None = None, **_: Any) -> dict[str, Any]:
    """The department asks for more time (延期); the ticket's supervisor decides."""
    ticket, now = step.ticket, step.now
    if not step.note:
        raise TicketError("an extension request needs a reason", "missing_note")
    if due_at is None:
        raise TicketError("an extension request needs the new due time (due_at)", "missing_due_at")
    if due_at.tzinfo is None:
        raise TicketError("due_at needs a time zone offset", "invalid_due_at")
    if due_at <= max(ticket.resolution_due_at, now):
        raise TicketError("the new due time must be later than the current one and than now", "invalid_due_at")
    ticket.extension_due_at, ticket.extension_reason = due_at, step.note
    ticket.extension_requested_by = step.actor.id
    notify(step.session, ticket, [ticket.supervisor_id], "extension_request",
           f"工单 {ticket.number} 申请延期至 {_local(step.router, due_at)}：{step.note}", now)
    return {"due_at": due_at.isoformat(), "reason": step.note}


def _check_decider(step: Step) -> None:
    actor, ticket = step.actor, step.ticket
    if actor.is_staff and actor.role != "admin" and actor.id != ticket.supervisor_id:
        raise Forbidden("only the ticket's supervisor (督办人) decides on its extension", "forbidden")


async def _do_approve_extension(step: Step, **_: Any) -> dict[str, Any]:
    _check_decider(step)
    ticket, now = step.ticket, step.now
    assert ticket.extension_due_at is not None
    before = ticket.resolution_due_at
    ticket.resolution_due_at = ticket.extension_due_at
    # Steps of the new schedule that are already past stay done; the rest are armed again.
    ticket.escalation_level = sum(1 for moment, _ in _steps(step.router, ticket) if moment <= now)
    requester = ticket.extension_requested_by
    ticket.extension_due_at = ticket.extension_reason = ticket.extension_requested_by = None
    notify(step.session, ticket, [requester], "extension_approved",
           f"工单 {ticket.number} 延期已批准，新的办理时限 {_local(step.router, ticket.resolution_due_at)}", now)
    return {"from": before.isoformat(), "resolution_due_at": ticket.resolution_due_at.isoformat()}


async def _do_reject_extension(step: Step, **_: Any) -> dict[str, Any]:
    _check_decider(step)
    ticket = step.ticket
    assert ticket.extension_due_at is not None
    requested = ticket.extension_due_at
    requester = ticket.extension_requested_by
    ticket.extension_due_at = ticket.extension_reason = ticket.extension_requested_by = None
    notify(step.session, ticket, [requester], "extension_rejected",
           f"工单 {ticket.number} 延期申请未获批准{('：' + step.note) if step.note else ''}", step.now)
    return {"requested": requested.isoformat()}


async def _do_return(step: Step, **_: Any) -> dict[str, Any]:
    """退单: not this department's business; back to the intake department to be routed again.
    The resident's clock keeps running: the due times stay."""
    if not step.note:
        raise TicketError("a return needs a reason", "missing_note")
    ticket, router = step.ticket, step.router
    intake = router.spec.intake_department
    dept_id, supervisor_id = await _department(step.session, intake)
    from_id = ticket.department_id
    ticket.department_id, ticket.supervisor_id, ticket.assignee_id = dept_id, supervisor_id, None
    ticket.extension_due_at = ticket.extension_reason = ticket.extension_requested_by = None
    notify(step.session, ticket, [supervisor_id], "returned",
           f"工单 {ticket.number} 被退回，需重新派单：{step.note}", step.now)
    return {"from_department_id": from_id, "department": intake, "reason": step.note}


ACTIONS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "assign": _do_assign, "start": _do_start, "resolve": _do_resolve, "callback": _do_callback,
    "close": _do_close, "reopen": _do_reopen, "reroute": _do_reroute, "comment": _do_comment,
    "arrive": _do_arrive, "request_extension": _do_request_extension,
    "approve_extension": _do_approve_extension, "reject_extension": _do_reject_extension, "return": _do_return,
    "resolve_with_incident": _do_resolve_with_incident, "raise_priority": _do_raise_priority,
}


async def transition(session: AsyncSession, router: Router, ticket: Ticket, action: str, actor: Actor,
                     now: dt.datetime, *, note: str = "", **arguments: Any) -> Ticket:
    """Apply one lifecycle action; anything not allowed raises before anything is written.

    The check is shared; each action's own rules and changes are its `_do_*`
    function; the status, the escalation clock and the audit event are set here
    for all of them alike.
    """
    spec = check_transition(ticket, action, actor)
    if spec.applies is not None and not spec.applies(ticket):
        raise InvalidTransition(f"{action} does not apply to ticket {ticket.number} now", "not_applicable")
    before = ticket.status
    step = Step(session, router, ticket, actor, now, note.strip())
    for guard in ACTION_GUARDS:
        holder = await guard(step, action)
        if holder:
            _event(session, ticket, actor, "hold", now, before, note=step.note,
                   data={"action": action, "held_by": holder})
            await session.flush()
            return ticket
    data = await ACTIONS[action](step, **arguments)
    if spec.target:
        ticket.status = spec.target
    ticket.updated_at = now
    if action != "comment":
        _arm_escalation(ticket, router)
    _event(session, ticket, actor, action, now, before, note=step.note, data=data)
    await session.flush()
    return ticket


def escalate_reopened(session: AsyncSession, router: Router, ticket: Ticket, now: dt.datetime) -> None:
    """A dissatisfied resident's reopened ticket is chased at once: its supervisor and assignee hear of it."""
    local_due = _local(router, ticket.resolution_due_at)
    message = f"工单 {ticket.number} 回访不满意，已重办，办理时限 {local_due}"
    recipients = notify(session, ticket, [ticket.supervisor_id, ticket.assignee_id], "reopened", message, now)
    _event(session, ticket, SYSTEM, "escalate", now, ticket.status, note="回访不满意，重办督办",
           data={"step": "reopened", "level": 1, "notified": recipients})


async def escalate_due_steps(session: AsyncSession, router: Router, ticket: Ticket, now: dt.datetime) -> int:
    """Record every escalation step whose moment has come; returns how many were recorded.

    The level and the next moment are written in the same transaction as the
    events and notices, so a crash or restart neither repeats nor loses a step.
    """
    steps = _steps(router, ticket)
    recorded = 0
    while ticket.status in OPEN_STATUSES and ticket.escalation_level < len(steps):
        moment, step = steps[ticket.escalation_level]
        if moment > now:
            break
        ticket.escalation_level += 1
        if step.only_status and ticket.status not in step.only_status:
            continue
        if step.at == "on_site_due" and ticket.arrived_at is not None:
            continue
        due = ticket.on_site_due_at if step.at == "on_site_due" else ticket.resolution_due_at
        assert due is not None
        local_due = due.astimezone(router.calendar.timezone).strftime("%Y-%m-%d %H:%M")
        kind = router.business_type(ticket.business_type).name
        limit = "到场时限" if step.at == "on_site_due" else "办理时限"
        message = f"工单 {ticket.number}（{kind}）{step.label}，{limit} {local_due}"
        recipients = notify(session, ticket, await _escalation_recipients(session, router, ticket, step.notify),
                            step.name, message, now)
        _event(session, ticket, SYSTEM, "escalate", now, ticket.status, note=step.label,
               data={"step": step.name, "level": ticket.escalation_level, "notified": recipients})
        recorded += 1
    _arm_escalation(ticket, router)
    return recorded


async def _escalation_recipients(session: AsyncSession, router: Router, ticket: Ticket,
                                 notify: Sequence[str]) -> list[int]:
    recipients: list[int] = []
    for who in notify:
        staff_id: int | None = None
        if who == "supervisor":
            staff_id = ticket.supervisor_id
        elif who == "assignee":
            staff_id = ticket.assignee_id
        elif who == "manager":
            _, staff_id = await _department(session, router.spec.escalation.manager_department)
        if staff_id is not None and staff_id not in recipients:
            recipients.append(staff_id)
    return recipients


# --- a manual chase (督办) ---------------------------------------------------------------------------

async def _do_chase(step: Step, **_: Any) -> dict[str, Any]:
    """督办 by hand: a supervisor presses the people responsible, with what they expect; the assignee and
    the department's supervisor (whoever of them is not the chaser) are told at once."""
    if not step.note:
        raise TicketError("a chase needs a note", "missing_note")
    ticket = step.ticket
    due = _local(step.router, ticket.resolution_due_at)
    message = f"工单 {ticket.number} 被{step.actor.name}督办：{step.note}（办理时限 {due}）"
    others = [i for i in (ticket.assignee_id, ticket.supervisor_id) if i is not None and i != step.actor.id]
    recipients = notify(step.session, ticket, others, "chase", message, step.now)
    return {"notified": recipients}


TRANSITIONS["chase"] = Transition(frozenset(OPEN_STATUSES), None, frozenset({"supervisor", "admin"}), "督办")
ACTIONS["chase"] = _do_chase
