"""Live events, published only after the transaction that caused them commits.

Callers queue an event on their session with `publish_on_commit`; listeners
(consoles, channels) hear it once the change is durable, never for a change
that was rolled back.

On PostgreSQL the same events also go out with NOTIFY inside the committing
transaction, which PostgreSQL delivers only if and when it commits; other
service processes LISTEN and hand them to their consoles (hotline/live/postgres.py).
Side effects that must happen once (telling a resident about their ticket) hang
off the local bus only, so they run in the process that made the change.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

Event = dict[str, Any]
Listener = Callable[[Event], None]


class EventBus:
    """In-process fan-out; a listener must not block (it gets events on the loop)."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def queue(self) -> tuple[asyncio.Queue[Event], Callable[[], None]]:
        """A queue that receives every event, and the function that detaches it."""
        q: asyncio.Queue[Event] = asyncio.Queue(maxsize=10_000)

        def put(evt: Event) -> None:
            try:
                q.put_nowait(evt)
            except asyncio.QueueFull:
                log.warning("event listener queue full; event %s dropped for it", evt.get("type"))

        return q, self.subscribe(put)

    def publish(self, evt: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(evt)
            except Exception:  # a broken listener must not stop the others
                log.exception("event listener failed")


def publish_on_commit(session: AsyncSession | Session, evt: Event) -> None:
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    sync.info.setdefault("pending_events", []).append(evt)


NOTIFY_CHANNEL = "hotline_events"
NOTIFY_LIMIT = 7900  # PostgreSQL refuses payloads of 8000 bytes and more


def notify_payload(origin: str, evt: Event) -> str:
    """The event as a NOTIFY payload; an over-long message text is cut and marked so consoles refetch."""
    payload = json.dumps({"origin": origin, "event": evt}, ensure_ascii=False, default=str)
    if len(payload.encode()) <= NOTIFY_LIMIT:
        return payload
    slim = {k: v for k, v in evt.items() if k != "message"}
    message = evt.get("message")
    if isinstance(message, dict):
        slim["message"] = {**message, "text": str(message.get("text", ""))[:500]}
    slim["truncated"] = True
    payload = json.dumps({"origin": origin, "event": slim}, ensure_ascii=False, default=str)
    if len(payload.encode()) <= NOTIFY_LIMIT:
        return payload
    keep = ("type", "conversation_id", "channel", "status", "ticket", "ticket_id", "department_id", "staff_ids")
    return json.dumps({"origin": origin, "event": {**{k: evt[k] for k in keep if k in evt}, "truncated": True}},
                      ensure_ascii=False, default=str)


@event.listens_for(Session, "before_commit")
def _notify_other_processes(session: Session) -> None:
    origin = session.info.get("notify_origin")
    pending = session.info.get("pending_events")
    if not origin or not pending or session.bind is None or session.bind.dialect.name != "postgresql":
        return
    session.execute(text("SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) "
                         "WITH ORDINALITY AS t(p, n) ORDER BY n"),
                    {"channel": NOTIFY_CHANNEL, "payloads": [notify_payload(origin, e) for e in pending]})


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    pending = session.info.pop("pending_events", None)
    bus: EventBus | None = session.info.get("bus")
    if pending and bus is not None:
        for evt in pending:
            bus.publish(evt)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop("pending_events", None)
