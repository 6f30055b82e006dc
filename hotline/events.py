"""Live events, published only after the transaction that caused them commits.

Callers queue an event on their session with `publish_on_commit`; listeners
(consoles, channels) hear it once the change is durable, never for a change
that was rolled back.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
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
