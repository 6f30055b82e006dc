"""The one interface every channel implements, for its whole life.

A channel is one folder under hotline/channels/ whose package registers a
`ChannelPlugin` (see registry.py). At start the app asks each plug-in to set
itself up: add its inbound routes and background work, and hand back the
`Channel` that delivers messages to residents (or None when it delivers none,
or is not configured). Model: Home Assistant's one folder per integration
behind `async_setup_entry`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from models import Conversation, Message

if TYPE_CHECKING:
    from hotline.context import AppContext


@dataclass(frozen=True)
class ChannelInfo:
    """What the rest of the service (API, console, bot) knows of a channel."""

    name: str  # stored on tickets, conversations and calls; at most 10 characters
    label: str  # its Chinese name in the console
    sends: frozenset[str]  # what the service can send on it: text, template, link, voice
    identifies_by: str  # how a resident is known on it: openid, browser id, caller number, staff entry
    conversations: bool = True  # residents converse on it (bot, agents); False: tickets and calls only

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "sends": sorted(self.sends),
                "identifies_by": self.identifies_by, "conversations": self.conversations}


@dataclass(frozen=True)
class Delivery:
    status: str  # delivered, stored (resident offline: shown when they come back), failed
    error: str | None = None


class Channel(Protocol):
    """A set-up channel: the conversation door hands it stored messages to deliver.

    It may also offer `async def typing(self, user: str, on: bool)` to show that
    the bot is working on an answer.
    """

    async def deliver(self, conversation: Conversation, message: Message) -> Delivery: ...


class ChannelPlugin(Protocol):
    @property
    def info(self) -> ChannelInfo: ...

    @property
    def config(self) -> type | None:
        """The dataclass of its own section in hotline.toml ([<name>], HOTLINE_<NAME>_<KEY>), or None."""
        ...

    def setup(self, app: web.Application, ctx: AppContext) -> Channel | None:
        """Add inbound routes and background work; return the channel that delivers, or None."""
        ...
