"""Talk to the Rasa server over its REST channel.

The bot asks for a person with one documented signal: a message whose custom
payload has "handoff": true (see bot/README.md). Everything else is text.

Every request carries Rasa's auth token (`?token=`). The bot counts as up only when the servers
prove who they are (hotline/rasa/runtime/bot_identity.py): the ones this service started report
through BotProcesses; servers run elsewhere are challenged here.

With several Rasa workers a message goes to its conversation's worker (BotProcesses.route); when
that worker fails mid-request (its connection breaks: killed, restarting) the message is sent to
the next healthy one, which reads the same tracker, within the same long limit. A worker that is
merely slow is waited for, as with one.
"""
from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

from hotline.rasa.runtime import bot_identity
from hotline.redact import mask

if TYPE_CHECKING:
    from hotline.rasa.processes import BotProcesses

log = logging.getLogger(__name__)

PROBE_TIMEOUT = aiohttp.ClientTimeout(total=2.5)  # /healthz gives each check 3 s


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


async def prove_identity(session: aiohttp.ClientSession, url: str, role: str, token: str,
                         timeout: aiohttp.ClientTimeout = PROBE_TIMEOUT  # noqa: ASYNC109 (aiohttp's own)
                         ) -> dict[str, Any]:
    """Challenge the server at url: it must answer with a proof made with token (never sent).

    Returns the server's answer (pid, and for Rasa whether its model is loaded); raises
    BotUnavailable, naming what answered wrongly, when it cannot prove it holds the token.
    """
    if not token:
        raise BotUnavailable(f"no token to check the {role} server at {url} with")
    path = bot_identity.RASA_IDENTITY_PATH if role == "rasa" else bot_identity.ACTIONS_IDENTITY_PATH
    nonce = secrets.token_hex(16)
    try:
        async with session.get(f"{url}{path}", params={"nonce": nonce}, timeout=timeout) as resp:
            if resp.status != 200:
                raise BotUnavailable(f"{url} is not the expected {role} server (identity: HTTP {resp.status})")
            data = await resp.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise BotUnavailable(f"{url}: {exc or type(exc).__name__}") from exc
    pid = data.get("pid") if isinstance(data, dict) else None
    if not isinstance(pid, int) or not bot_identity.verify(token, role, nonce, pid, str(data.get("proof", ""))):
        raise BotUnavailable(f"{url} does not prove this service's token: not our {role} server")
    return data


class RasaClient:
    def __init__(self, base_url: str, timeout: float, actions_url: str | None = None, *,
                 token: str = "", actions_token: str = "", processes: BotProcesses | None = None) -> None:
        """token: Rasa's API token; actions_token: the action server's (the service token);
        processes: the supervisor of the servers this service started, which knows their truth."""
        self.base_url = base_url.rstrip("/")
        self.actions_url = actions_url.rstrip("/") if actions_url else None
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.token = token
        self.actions_token = actions_token
        self.processes = processes
        self._session: aiohttp.ClientSession | None = None

    def _params(self) -> dict[str, str]:
        return {"token": self.token} if self.token else {}

    def _check_own_rasa(self) -> None:
        """Never send a resident's words (or the token) to whatever holds the port while ours is down."""
        if self.processes is not None and not self.processes.rasa_ready():
            raise BotUnavailable(self.processes.rasa_detail())

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    def _worker(self, key: str, failed: frozenset[str]) -> tuple[str, str]:
        """(name, URL) of the Rasa server to ask about `key` now; one configured URL is always itself."""
        if self.processes is None:
            return "rasa", self.base_url
        self._check_own_rasa()
        chosen = self.processes.route(key, failed)
        if chosen is None:
            raise BotUnavailable(f"no other Rasa worker is up ({self.processes.rasa_detail()})")
        return chosen

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any] | None = None) -> BotReply:
        body = {"sender": sender_id, "message": text, "metadata": metadata or {}}
        failed: frozenset[str] = frozenset()
        while True:
            name, url = self._worker(sender_id, failed)
            try:
                async with self._http().post(f"{url}/webhooks/rest/webhook", json=body,
                                             params=self._params()) as resp:
                    if resp.status != 200:
                        raise BotUnavailable(f"Rasa answered HTTP {resp.status}")
                    messages = await resp.json()
                break
            except aiohttp.ClientConnectionError as exc:
                # Broken or refused, not slow (a timeout is the long limit's business): the worker
                # went away. Its tracker was not saved, so another worker handles the message afresh.
                if self.processes is None or len(self.processes.workers) < 2 or isinstance(exc, TimeoutError):
                    raise BotUnavailable(str(exc) or type(exc).__name__) from exc
                failed |= {name}
                self.processes.failovers += 1
                log.warning("Rasa worker %s failed mid-request for %s (%s); sending it to another worker",
                            name, mask(sender_id), str(exc) or type(exc).__name__)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                raise BotUnavailable(str(exc) or type(exc).__name__) from exc
        if not isinstance(messages, list):
            raise BotUnavailable("Rasa answered something that is not a list of messages")
        return parse_reply(messages)

    async def parse(self, text: str) -> dict[str, Any]:
        """The NLU result alone (intent and entities), e.g. to guess a conversation's category."""
        _, url = self._worker(text, frozenset())
        try:
            async with self._http().post(f"{url}/model/parse", json={"text": text},
                                         params=self._params()) as resp:
                if resp.status != 200:
                    raise BotUnavailable(f"Rasa answered HTTP {resp.status}")
                return await resp.json()
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BotUnavailable(str(exc) or type(exc).__name__) from exc

    async def status(self) -> dict[str, Any]:
        """Up only when Rasa (model loaded) and the action server answer as the expected servers.

        The servers this service started are watched by BotProcesses (their pids, restarts, last
        exit); servers at configured URLs are challenged now, with the tokens this service holds.
        """
        own_actions = self.processes is not None and self.processes.owns_actions
        if self.processes is not None:
            result = self.processes.status()
            if self.processes.shared_stores:
                # Workers that prove who they are still fail every message without their lock store.
                from hotline.rasa.processes import redis_ping
                problem = await redis_ping(self.processes.config.bot.redis_url)
                result["lock_store"] = {"up": problem is None, **({"detail": problem} if problem else {})}
                if problem:
                    result["up"] = False
                    result["detail"] = "; ".join(filter(None, [result.get("detail"), problem]))
        else:
            result = {"url": self.base_url}
            try:
                identity = await prove_identity(self._http(), self.base_url, "rasa", self.token)
                async with self._http().get(f"{self.base_url}/status", params=self._params(),
                                            timeout=PROBE_TIMEOUT) as resp:
                    data = await resp.json() if resp.status == 200 else {}
                result["model"] = data.get("model_file")
                result["up"] = bool(result["model"]) and bool(identity.get("ready", True))
                if not result["up"]:
                    result["detail"] = f"Rasa at {self.base_url} has no model loaded (status HTTP {resp.status})"
            except BotUnavailable as exc:
                result.update(up=False, detail=str(exc))
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                result.update(up=False, detail=str(exc) or type(exc).__name__)
        if self.actions_url and not own_actions:
            try:
                await prove_identity(self._http(), self.actions_url, "actions", self.actions_token)
                result["actions"] = True
            except BotUnavailable as exc:
                result.update(actions=False, actions_detail=str(exc))
            result["up"] = bool(result.get("up")) and result["actions"]
        return result

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
