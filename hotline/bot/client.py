"""Talk to the Rasa server over its REST channel.

The bot asks for a person with one documented signal: a message whose custom
payload has "handoff": true (see bot/README.md). Everything else is text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiohttp


class BotUnavailable(Exception):
    """Rasa is down, slow or answered with an error; the caller must not lose the message."""


@dataclass
class BotReply:
    texts: list[str] = field(default_factory=list)
    handoff: bool = False
    handoff_reason: str | None = None
    category: str | None = None
    learned: dict[str, Any] = field(default_factory=dict)  # what the bot found out, for the agent's ticket form


def parse_reply(messages: list[dict[str, Any]]) -> BotReply:
    reply = BotReply()
    for message in messages:
        if message.get("text"):
            reply.texts.append(message["text"])
        custom = message.get("custom")
        if isinstance(custom, dict) and custom.get("handoff") is True:
            reply.handoff = True
            reply.handoff_reason = custom.get("reason")
            reply.category = custom.get("category") or reply.category
            if isinstance(custom.get("learned"), dict):
                reply.learned = {k: v for k, v in custom["learned"].items() if isinstance(v, (str, int, float, bool))}
    return reply


class RasaClient:
    def __init__(self, base_url: str, timeout: float, actions_url: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.actions_url = actions_url.rstrip("/") if actions_url else None
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any] | None = None) -> BotReply:
        body = {"sender": sender_id, "message": text, "metadata": metadata or {}}
        try:
            async with self._http().post(f"{self.base_url}/webhooks/rest/webhook", json=body) as resp:
                if resp.status != 200:
                    raise BotUnavailable(f"Rasa answered HTTP {resp.status}")
                messages = await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BotUnavailable(str(exc) or type(exc).__name__) from exc
        if not isinstance(messages, list):
            raise BotUnavailable("Rasa answered something that is not a list of messages")
        return parse_reply(messages)

    async def parse(self, text: str) -> dict[str, Any]:
        """The NLU result alone (intent and entities), e.g. to guess a conversation's category."""
        try:
            async with self._http().post(f"{self.base_url}/model/parse", json={"text": text}) as resp:
                if resp.status != 200:
                    raise BotUnavailable(f"Rasa answered HTTP {resp.status}")
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BotUnavailable(str(exc) or type(exc).__name__) from exc

    async def status(self) -> dict[str, Any]:
        """Up when the Rasa server has a model loaded and the action server answers."""
        result: dict[str, Any] = {"url": self.base_url}
        try:
            async with self._http().get(f"{self.base_url}/status") as resp:
                data = await resp.json() if resp.status == 200 else {}
            result["model"] = data.get("model_file")
            result["up"] = bool(result["model"])
            if self.actions_url:
                async with self._http().get(f"{self.actions_url}/health") as resp:
                    result["actions"] = resp.status == 200
                    result["up"] = result["up"] and result["actions"]
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            result.update(up=False, detail=str(exc) or type(exc).__name__)
        return result

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
