"""WeChat channel: passive replies inside WeChat's 5-second window, the customer-service API after it.

While a push is being answered, the conversation has an open `PassiveReply`:
messages delivered then are returned in the HTTP answer itself. When the
window closes (or the push already answered), deliveries go through
/cgi-bin/message/custom/send.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hotline.channels.base import Delivery
from hotline.channels.wechat.api import WeChatApi, WeChatApiError
from hotline.redact import mask
from models import Conversation, Message

log = logging.getLogger(__name__)


@dataclass
class PassiveReply:
    messages: list[Message] = field(default_factory=list)
    open: bool = True


TEMPLATES = Path(__file__).resolve().parents[3] / "config" / "wechat_templates.yml"


class WeChatChannel:
    name = "wechat"

    def __init__(self, api: WeChatApi, templates: dict[str, Any] | None = None) -> None:
        self.api = api
        self.passive: dict[str, PassiveReply] = {}  # openid -> the push being answered now
        self.templates = templates if templates is not None else yaml.safe_load(TEMPLATES.read_text("utf-8"))

    async def send_survey_template(self, openid: str, ticket: str, url: str) -> bool:
        """The survey's template message with its signed link; False when none is configured or it failed."""
        spec = self.templates.get("survey") or {}
        if not spec.get("template_id"):
            log.warning("no WeChat survey template configured (config/wechat_templates.yml): survey for %s "
                        "not sent", ticket)
            return False
        fields = {name: str(text).format(ticket=ticket) for name, text in (spec.get("fields") or {}).items()}
        try:
            await self.api.send_template(openid, spec["template_id"], url, fields)
        except (WeChatApiError, OSError, TimeoutError, ValueError) as exc:
            log.warning("WeChat survey template for %s failed: %s", ticket, exc)
            return False
        return True

    async def deliver(self, conversation: Conversation, message: Message) -> Delivery:
        waiting = self.passive.get(conversation.external_user)
        if waiting is not None and waiting.open:
            waiting.messages.append(message)
            return Delivery("delivered")
        return await self.send_via_api(conversation.external_user, message.text)

    async def send_via_api(self, openid: str, text: str) -> Delivery:
        try:
            await self.api.send_text(openid, text)
        except WeChatApiError as exc:
            log.warning("WeChat customer-service message to %s failed: %s", mask(openid), exc)
            return Delivery("failed", f"{exc.code}: {exc.message}")
        except (OSError, TimeoutError, ValueError) as exc:
            return Delivery("failed", f"WeChat API unreachable: {exc}")
        return Delivery("delivered")
