"""The one small interface every channel implements: deliver a stored message to the resident."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from models import Conversation, Message


@dataclass(frozen=True)
class Delivery:
    status: str  # delivered, stored (resident offline: shown when they come back), failed
    error: str | None = None


class Channel(Protocol):
    name: str

    async def deliver(self, conversation: Conversation, message: Message) -> Delivery: ...
