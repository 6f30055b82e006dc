"""Rasa's RedisLockStore, with a waiting message that keeps its place until it is served.

Rasa gives each message of a conversation a ticket that expires `TICKET_LOCK_LIFETIME` seconds after
it was issued, whether the message holds the lock or still waits for it. Expiry is what frees a
conversation whose worker died holding it; but a ticket that expires while waiting is never served
(Rasa then waits for it until the request times out). That is exactly the message the service
sends to another worker when its own worker was killed: issued just after the dead one's ticket, it
expires just after it too, and the residents' message was answered only by a person.

Here a waiting ticket's expiry is pushed back at every poll, so only a holder's ticket expires:
a dead worker's hold ends after the lifetime and the waiting message is then served. Named in the
endpoints file as `hotline_lock_store.HotlineRedisLockStore` (this folder is on the Rasa server's path).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from rasa.core.lock import Ticket, TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore


class HotlineRedisLockStore(RedisLockStore):
    def __init__(self, endpoint_config: Any) -> None:
        super().__init__(host=endpoint_config.url, **endpoint_config.kwargs)

    async def _acquire_lock(self, conversation_id: str, ticket: int, wait_time_in_seconds: float) -> TicketLock:
        while True:
            lock = self.get_lock(conversation_id)
            if not lock:
                break
            if not lock.is_locked(ticket):
                return lock
            # Still waiting (is_locked dropped the expired tickets): our own ticket lives on.
            others = [t for t in lock.tickets if t.number != ticket]
            lock.tickets = deque(sorted([*others, Ticket(ticket, time.time() + LOCK_LIFETIME)],
                                        key=lambda t: t.number))
            self.save_lock(lock)
            await asyncio.sleep(wait_time_in_seconds)
        raise LockError(f"Could not acquire lock for conversation_id '{conversation_id}'.")
