"""POST /gov12345/{kind}: what 12345 pushes; /api/gov12345/… and /api/integrations/…: what staff see.

A push is verified before anything is read into the store: the HMAC-SHA256
signature with [gov12345] inbound_secret over method, path, timestamp and body
(401 when wrong; our own messages are signed with another key), a timestamp within
[gov12345] max_age_seconds (401 when stale) and a signature not seen before
(401 when replayed; remembered in the database so every process knows it).
Then its fields are checked (422 with the field; a field this kind of push does
not have is refused too, so no other message passes as it) and it is applied in one
transaction through hotline/integrations/gov12345/adapter.py.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from hotline.api.middleware import guard
from hotline.api.registry import STAFF_AND_SERVICE, ApiError, actor_of, ctx_of, json_response
from hotline.context import AppContext
from hotline.integrations import outbox, signing
from hotline.integrations.gov12345 import adapter
from hotline.integrations.gov12345.mapping import Mapping, load_mapping
from hotline.integrations.gov12345.transport import Gov12345Transport
from hotline.tickets import lifecycle
from hotline.tickets.lifecycle import TicketError
from models import Gov12345Order, InboundNonce, OutboxMessage, Ticket

log = logging.getLogger(__name__)
MAPPING = web.AppKey("gov12345_mapping", Mapping)
ADMINS = frozenset({"admin"})


class _In(BaseModel):
    model_config = ConfigDict(str_strip_whitespace=True, extra="forbid")
    order_no: str = Field(min_length=1, max_length=64)


class OrderIn(_In):
    type: str = Field(min_length=1, max_length=100)
    title: str = Field(default="", max_length=200)
    content: str = Field(min_length=1, max_length=4000)
    caller: str = Field(default="", max_length=100)
    phone: str | None = Field(default=None, max_length=32)
    address: str = Field(default="", max_length=255)
    accepted_at: AwareDatetime
    sign_due_at: AwareDatetime
    due_at: AwareDatetime
    urgency: str = Field(default="normal", max_length=20)
    attachments: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        try:
            return lifecycle.normalize_phone(value)
        except TicketError as exc:
            raise ValueError(exc.message) from None

    @field_validator("attachments")
    @classmethod
    def _urls(cls, value: list[str]) -> list[str]:
        for url in value:
            if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 500:
                raise ValueError("attachments must be http(s) URLs of at most 500 characters")
        return value


class ChaseIn(_In):
    content: str = Field(default="", max_length=2000)


class DecisionIn(_In):
    request: Literal["extension", "return"]
    approved: bool
    note: str = Field(default="", max_length=2000)
    due_at: AwareDatetime | None = None  # extension: the date 12345 granted (default: the one asked for)


class SatisfactionIn(_In):
    result: str = Field(min_length=1, max_length=20)
    note: str = Field(default="", max_length=2000)


class RedispatchIn(_In):
    reason: str = Field(default="", max_length=2000)
    due_at: AwareDatetime | None = None
    sign_due_at: AwareDatetime | None = None


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    return value.astimezone(dt.UTC) if value else None


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def _answer(status: int, code: str, message: str, details: Any = None) -> web.Response:
    body: dict[str, Any] = {"error": code, "message": message}
    if details is not None:
        body["details"] = details
    return json_response(body, status=status)


def _validate(model: type[_In], data: dict[str, Any], mapping: Mapping) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = [{"field": mapping.wire(str(err["loc"][0])) if err["loc"] else "",
                    "message": err["msg"]} for err in exc.errors()]
        raise Refused(422, "invalid_input", "the push has invalid fields", details) from None


async def _verify(request: web.Request, ctx: AppContext, raw: bytes) -> None:
    """Signature, freshness and first use; raises Refused (401) and stores nothing but the seen signature."""
    cfg = ctx.config.channels[adapter.CHANNEL]
    timestamp = request.headers.get("X-Timestamp", "")
    given = request.headers.get("X-Signature", "")
    if not signing.valid(cfg.inbound_secret, request.method, request.path, timestamp, raw, given):
        raise Refused(401, "invalid_signature",
                      "X-Signature does not match the method, path, X-Timestamp and body")
    now = ctx.clock()
    try:
        sent = dt.datetime.fromtimestamp(int(timestamp), dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise Refused(401, "invalid_timestamp", "X-Timestamp must be Unix seconds") from None
    window = dt.timedelta(seconds=cfg.max_age_seconds)
    if abs(now - sent) > window:
        raise Refused(401, "stale_timestamp", f"X-Timestamp is more than {cfg.max_age_seconds} s away from now")
    try:
        async with ctx.sessions.begin() as session:
            # A signature stops passing the freshness check by 2 windows after it was seen: forget it then.
            await session.execute(delete(InboundNonce).where(InboundNonce.seen_at < now - 2 * window))
            session.add(InboundNonce(digest=signing.digest(given), target=adapter.TARGET, seen_at=now))
    except IntegrityError:
        raise Refused(401, "replayed", "this push was received before; sign a new one") from None


async def _order(ctx: AppContext, mapping: Mapping, data: dict[str, Any]) -> dict[str, Any]:
    order = _validate(OrderIn, mapping.rename_inbound(data), mapping)
    urgency = mapping.urgency.get(order.urgency)
    if urgency is None:
        raise Refused(422, "invalid_input", "the push has invalid fields",
                      [{"field": mapping.wire("urgency"), "message": f"unknown urgency {order.urgency!r}"}])
    fields = {**order.model_dump(), "urgency": urgency, "accepted_at": _utc(order.accepted_at),
              "sign_due_at": _utc(order.sign_due_at), "due_at": _utc(order.due_at)}
    for attempt in range(3):
        try:
            async with ctx.sessions.begin() as session:
                number, created = await adapter.accept_order(session, ctx.router, mapping.types, mapping.unrouted,
                                                             fields, data, ctx.clock())
            if created:
                log.info("12345 order %s became ticket %s", order.order_no, number)
            return {"order_no": order.order_no, "ticket": number}
        except IntegrityError:
            if attempt == 2:
                raise
            # The same order pushed twice at once: the other push made the ticket; answer with it.
            async with ctx.readers() as session:
                number_or_none = await adapter.existing_ticket(session, order.order_no)
            if number_or_none is not None:
                return {"order_no": order.order_no, "ticket": number_or_none}
    raise AssertionError("unreachable")


async def _chase(ctx: AppContext, mapping: Mapping, data: dict[str, Any]) -> dict[str, Any]:
    push = _validate(ChaseIn, data, mapping)
    async with ctx.sessions.begin() as session:
        ticket = await adapter.chase(session, ctx.router, push.order_no, push.content, ctx.clock())
        return {"order_no": push.order_no, "ticket": ticket.number}


async def _decision(ctx: AppContext, mapping: Mapping, data: dict[str, Any]) -> dict[str, Any]:
    push = _validate(DecisionIn, data, mapping)
    async with ctx.sessions.begin() as session:
        ticket = await adapter.decide(session, ctx.router, push.order_no, push.request, push.approved, push.note,
                                      _utc(push.due_at), ctx.clock())
        return {"order_no": push.order_no, "ticket": ticket.number, "resolution_due_at":
                ticket.resolution_due_at.isoformat()}


async def _satisfaction(ctx: AppContext, mapping: Mapping, data: dict[str, Any]) -> dict[str, Any]:
    push = _validate(SatisfactionIn, data, mapping)
    answer = mapping.satisfaction.get(push.result)
    if answer is None:
        raise Refused(422, "invalid_input", "the push has invalid fields", [
            {"field": "result", "message": f"expected one of {', '.join(mapping.satisfaction)}"}])
    async with ctx.sessions.begin() as session:
        ticket = await adapter.satisfaction(session, ctx.router, push.order_no, push.result, answer, push.note,
                                            ctx.clock())
        return {"order_no": push.order_no, "ticket": ticket.number, "status": ticket.status}


async def _redispatch(ctx: AppContext, mapping: Mapping, data: dict[str, Any]) -> dict[str, Any]:
    push = _validate(RedispatchIn, data, mapping)
    async with ctx.sessions.begin() as session:
        ticket = await adapter.redispatch(session, ctx.router, push.order_no, push.reason, _utc(push.due_at),
                                          _utc(push.sign_due_at), ctx.clock())
        return {"order_no": push.order_no, "ticket": ticket.number, "status": ticket.status}


PUSHES: dict[str, Callable[[AppContext, Mapping, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "orders": _order, "chases": _chase, "decisions": _decision, "satisfaction": _satisfaction,
    "redispatch": _redispatch,
}


async def inbound(request: web.Request) -> web.Response:
    ctx = request.app[_CTX]
    handler = PUSHES.get(request.match_info["kind"])
    if handler is None or not ctx.config.channels[adapter.CHANNEL].inbound_secret:
        return _answer(404, "not_found", "no such endpoint")
    try:
        raw = await request.read()
        await _verify(request, ctx, raw)
        try:
            data = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise Refused(400, "invalid_json", "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise Refused(400, "invalid_json", "the body must be a JSON object")
        return json_response(await handler(ctx, request.app[MAPPING], data))
    except Refused as exc:
        return _answer(exc.status, exc.code, exc.message, exc.details)
    except adapter.OrderError as exc:
        return _answer(exc.status, exc.code, exc.message)
    except TicketError as exc:
        return _answer(exc.status, exc.code, exc.message)
    except Exception:
        log.exception("12345 push to %s failed", request.path)
        return _answer(500, "internal_error", "internal error; nothing was changed")


# ---- staff: a ticket's 12345 block, and the admins' failed messages --------------------------------------

async def ticket_order(request: web.Request) -> web.Response:
    """The 12345 order behind a ticket with every message sent about it and its delivery state."""
    ctx, actor = ctx_of(request), actor_of(request)
    async with ctx.readers() as session:
        ticket = await lifecycle.get_ticket(session, request.match_info["number"], actor)
        order = await adapter.order_of(session, ticket.id)
        if order is None:
            raise ApiError(404, "not_found", f"ticket {ticket.number} is not a 12345 order")
        messages = (await session.execute(select(OutboxMessage).where(OutboxMessage.ticket_id == ticket.id)
                                          .order_by(OutboxMessage.id))).scalars().all()
        return json_response({**adapter.order_json(order, ctx.router), "ticket": ticket.number,
                              "messages": [outbox.message_json(m) for m in messages]})


async def failed_messages(request: web.Request) -> web.Response:
    """Messages that failed for good (a 4xx, or retries exhausted): admins see why and may retry them."""
    ctx = ctx_of(request)
    async with ctx.readers() as session:
        rows = (await session.execute(select(OutboxMessage, Gov12345Order.ticket_id)
                                      .outerjoin(Gov12345Order, Gov12345Order.order_no == OutboxMessage.key)
                                      .where(OutboxMessage.state == "failed")
                                      .order_by(OutboxMessage.id).limit(200))).all()
        numbers: dict[int, str] = {}
        ids = {m.ticket_id for m, _ in rows if m.ticket_id}
        if ids:
            numbers = dict((await session.execute(select(Ticket.id, Ticket.number).where(Ticket.id.in_(ids)))).all())
    return json_response({"items": [{**outbox.message_json(m), "ticket": numbers.get(m.ticket_id or 0)}
                                    for m, _ in rows]})


async def retry_message(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    try:
        message_id = int(request.match_info["id"])
    except ValueError:
        raise ApiError(404, "not_found", "no such message") from None
    async with ctx.sessions.begin() as session:
        row = await outbox.retry(session, message_id, ctx.clock())
        if row is None:
            raise ApiError(404, "not_found", "no such message")
        data = outbox.message_json(row)
    return json_response(data)


_CTX = web.AppKey("gov12345_ctx", AppContext)
_WORKER_STARTED = web.AppKey("outbox_worker_started", bool)


def setup(app: web.Application, ctx: AppContext) -> None:
    cfg = ctx.config.channels[adapter.CHANNEL]
    mapping = load_mapping(ctx.config.path(cfg.mapping_file), ctx.router)
    app[MAPPING] = mapping
    app[_CTX] = ctx
    app.router.add_post("/gov12345/{kind}", inbound)
    app.router.add_get("/api/gov12345/tickets/{number}", guard(ticket_order, STAFF_AND_SERVICE))
    app.router.add_get("/api/integrations/outbox/failed", guard(failed_messages, ADMINS))
    app.router.add_post("/api/integrations/outbox/{id}/retry", guard(retry_message, ADMINS))
    transport = Gov12345Transport(cfg.base_url, cfg.outbound_secret, mapping, cfg.timeout_seconds)
    settings = outbox.Settings(max_attempts=cfg.max_attempts, backoff_seconds=cfg.backoff_seconds,
                               backoff_max_seconds=cfg.backoff_max_seconds, concurrency=cfg.concurrency)

    async def exchange(_: web.Application) -> AsyncIterator[None]:
        """The transport while the app runs, and the outbox worker (one per process for every integration)."""
        outbox.register(adapter.TARGET, transport)
        worker = task = None
        if cfg.worker:
            worker = outbox.Worker(ctx.sessions, ctx.live, settings, ctx.clock, cfg.worker_interval_seconds)
            task = asyncio.create_task(worker.run(), name="outbox-worker")
            ctx.health_checks["outbox"] = worker.runs  # down when its sweeps keep failing or its loop ended
            worker.runs.watch(task)
        yield
        if task is not None and worker is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            worker.close()
        outbox.unregister(adapter.TARGET)
        await transport.close()

    app.cleanup_ctx.append(exchange)
