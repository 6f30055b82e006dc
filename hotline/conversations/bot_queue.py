"""The queue in front of the Rasa server: slow is not down.

Rasa answers one message at a time per CPU; under a burst, sending every
message at once makes all of them slow, and treating slow as down would hand
every resident to an agent. Instead at most `concurrency` requests are in
flight; the rest wait their turn, and past `queue_size` waiting messages the
resident is told to wait (not handed off). Only a failing bot, or one that has
not answered within the long limit (waiting included), sends a resident to a
person.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any


class BotQueue:
    def __init__(self, concurrency: int, queue_size: int) -> None:
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self.concurrency = max(1, concurrency)
        self.queue_size = max(0, queue_size)
        self.waiting = 0
        self.in_flight = 0
        self.answered = 0
        self.failed = 0
        self.overflowed = 0  # messages that arrived with the queue full (the resident was asked to wait)

    @property
    def full(self) -> bool:
        return self.waiting >= self.queue_size

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a free slot, then hold it while Rasa works on one message."""
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()

    def status(self) -> dict[str, Any]:
        return {"in_flight": self.in_flight, "waiting": self.waiting, "concurrency": self.concurrency,
                "queue_size": self.queue_size, "answered": self.answered, "failed": self.failed,
                "overflowed": self.overflowed}
