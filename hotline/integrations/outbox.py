"""The durable outbox: what the service must tell other systems, delivered even when they are down.

`enqueue` adds a row inside the caller's transaction, so a message exists if
and only if the change it reports committed. The worker claims due messages
(FOR UPDATE SKIP LOCKED on PostgreSQL, as the escalation scheduler does) and
leases them by moving `next_attempt_at` ahead before it commits the claim and
sends: a process that dies while sending leaves the lease to run out, and
another process (or the same after a restart) sends the message again. The
other side de-duplicates by `message_id`, so at-least-once becomes once.

Order: a message is claimable only when every earlier message with the same
(target, key) has been delivered, so an order number's messages arrive in the
order they were written, even across processes and retries. A message that
failed for good (a 4xx, or retries exhausted) holds back the later ones of its
key until an admin retries it from the console.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased

from hotline.events import EventBus, publish_on_commit
from hotline.health import JobRuns
from models import OutboxMessage

log = logging.getLogger(__name__)

QUEUED = "outbox.queued"  # the live event that wakes the worker at once (in every process on PostgreSQL)
CHANGED = "outbox.changed"  # a message was delivered, failed or retried: consoles refresh


@dataclass(frozen=True)
class Outgoing:
    """A claimed message, detached from the session so it can be sent after the claim commits."""

    id: int
    target: str
    kind: str
    key: str
    message_id: str
    payload: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Result:
    delivered: bool
    error: str | None = None
    permanent: bool = False  # the other side refused the message itself (4xx): retrying would not help


class Transport(Protocol):
    """How one system receives messages; it never raises for a failed delivery, it returns a Result."""

    async def send(self, message: Outgoing) -> Result: ...


@dataclass
class Settings:
    max_attempts: int = 15  # then the message is failed and shown to admins
    backoff_seconds: float = 5.0  # the first retry; each next one waits twice as long …
    backoff_max_seconds: float = 1800.0  # … up to this
    lease_seconds: float = 60.0  # a claimed message is sent again after this if its sender vanished
    batch: int = 200
    concurrency: int = 16  # messages in flight at once (different keys)


_transports: dict[str, Transport] = {}


def register(target: str, transport: Transport) -> None:
    _transports[target] = transport


def unregister(target: str) -> None:
    _transports.pop(target, None)


def transports() -> dict[str, Transport]:
    return dict(_transports)


def enqueue(session: AsyncSession, target: str, kind: str, key: str, payload: dict[str, Any], now: dt.datetime,
            *, ticket_id: int | None = None) -> OutboxMessage:
    """Add a message inside the caller's transaction; no I/O, so the lifecycle's listeners may call it."""
    message = OutboxMessage(target=target, kind=kind, key=key, message_id=uuid.uuid4().hex, payload=payload,
                            ticket_id=ticket_id, state="pending", attempts=0, next_attempt_at=now, created_at=now)
    session.add(message)
    publish_on_commit(session, {"type": QUEUED, "target": target, "ticket_id": ticket_id})
    return message


def backoff(settings: Settings, attempts: int) -> dt.timedelta:
    """After the n-th failed attempt: backoff × 2^(n-1), capped."""
    seconds = settings.backoff_seconds * (2 ** max(0, attempts - 1))
    return dt.timedelta(seconds=min(seconds, settings.backoff_max_seconds))


async def claim(session: AsyncSession, now: dt.datetime, targets: list[str], settings: Settings) -> list[Outgoing]:
    """The due heads of their keys, leased to this worker; the caller commits before sending."""
    earlier = aliased(OutboxMessage)
    blocked = (select(earlier.id).where(earlier.target == OutboxMessage.target, earlier.key == OutboxMessage.key,
                                        earlier.id < OutboxMessage.id, earlier.state != "sent").exists())
    stmt = (select(OutboxMessage)
            .where(OutboxMessage.state == "pending", OutboxMessage.next_attempt_at <= now,
                   OutboxMessage.target.in_(targets), ~blocked)
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(settings.batch))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True, of=OutboxMessage)
    rows = list((await session.execute(stmt)).scalars())
    lease = now + dt.timedelta(seconds=settings.lease_seconds)
    claimed = []
    for row in rows:
        row.attempts += 1
        row.next_attempt_at = lease
        claimed.append(Outgoing(row.id, row.target, row.kind, row.key, row.message_id, dict(row.payload),
                                row.attempts))
    return claimed


async def record(session: AsyncSession, message: Outgoing, result: Result, now: dt.datetime,
                 settings: Settings) -> None:
    row = await session.get(OutboxMessage, message.id, with_for_update=session.get_bind().dialect.name
                            == "postgresql")
    if row is None or row.state != "pending":
        return  # an admin changed it meanwhile
    if result.delivered:
        row.state, row.sent_at, row.next_attempt_at, row.last_error = "sent", now, None, None
    elif result.permanent or row.attempts >= settings.max_attempts:
        row.state, row.next_attempt_at, row.last_error = "failed", None, result.error
        log.warning("outbox message %s (%s %s for %s) failed for good: %s", row.id, row.target, row.kind,
                    row.key, result.error)
    else:
        row.next_attempt_at, row.last_error = now + backoff(settings, row.attempts), result.error
    publish_on_commit(session, {"type": CHANGED, "target": row.target, "ticket_id": row.ticket_id,
                                "state": row.state})


async def deliver_due(sessions: async_sessionmaker[AsyncSession], now: dt.datetime,
                      settings: Settings | None = None, transports_: dict[str, Transport] | None = None,
                      clock: Callable[[], dt.datetime] | None = None) -> int:
    """Send every message due at `now` (and the ones each delivery unblocks); returns how many were delivered."""
    settings = settings or Settings()
    targets = transports_ if transports_ is not None else transports()
    if not targets:
        return 0
    gate = asyncio.Semaphore(settings.concurrency)
    delivered = 0

    async def send(message: Outgoing) -> Result:
        async with gate:
            try:
                return await targets[message.target].send(message)
            except Exception as exc:  # a transport bug must not lose the message: it is retried
                log.exception("outbox transport %s raised", message.target)
                return Result(False, f"{type(exc).__name__}: {exc}")

    while True:
        async with sessions.begin() as session:
            claimed = await claim(session, now, sorted(targets), settings)
        if not claimed:
            return delivered
        results = await asyncio.gather(*(send(m) for m in claimed))
        done = clock() if clock else now
        async with sessions.begin() as session:
            for message, result in zip(claimed, results, strict=True):
                await record(session, message, result, done, settings)
        delivered += sum(1 for r in results if r.delivered)
        if not any(r.delivered for r in results):
            return delivered  # nothing got through: the next ones of these keys stay blocked anyway


class Worker:
    """The one delivery loop of a process: woken by new messages, else every `interval` seconds."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], live: EventBus, settings: Settings,
                 clock: Callable[[], dt.datetime], interval: float = 5.0) -> None:
        self.sessions, self.settings, self.clock, self.interval = sessions, settings, clock, interval
        self.wake = asyncio.Event()
        self._detach = live.subscribe(self._hear)
        self.runs = JobRuns("outbox", log=log)  # its health check: sweeps that keep failing are down

    def _hear(self, evt: dict[str, Any]) -> None:
        if evt.get("type") == QUEUED:
            self.wake.set()

    async def run(self) -> None:
        while True:
            self.wake.clear()
            with self.runs.attempt():
                await deliver_due(self.sessions, self.clock(), self.settings, clock=self.clock)
            try:
                await asyncio.wait_for(self.wake.wait(), self.interval)
            except TimeoutError:
                pass

    def close(self) -> None:
        self._detach()


async def retry(session: AsyncSession, message_id: int, now: dt.datetime) -> OutboxMessage | None:
    """An admin sends a failed message again: a fresh round of attempts from now."""
    row = await session.get(OutboxMessage, message_id)
    if row is None:
        return None
    if row.state == "failed":
        row.state, row.attempts, row.next_attempt_at = "pending", 0, now
        publish_on_commit(session, {"type": QUEUED, "target": row.target, "ticket_id": row.ticket_id})
        publish_on_commit(session, {"type": CHANGED, "target": row.target, "ticket_id": row.ticket_id,
                                    "state": row.state})
    return row


def message_json(row: OutboxMessage) -> dict[str, Any]:
    return {"id": row.id, "target": row.target, "kind": row.kind, "key": row.key, "message_id": row.message_id,
            "payload": row.payload, "ticket_id": row.ticket_id, "state": row.state, "attempts": row.attempts,
            "next_attempt_at": row.next_attempt_at.isoformat() if row.next_attempt_at else None,
            "last_error": row.last_error, "created_at": row.created_at.isoformat(),
            "sent_at": row.sent_at.isoformat() if row.sent_at else None}
