"""What the actions share: the channel's metadata, the handoff signal, phone and account checks."""
from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import knowledge

ACCOUNT_RE = re.compile(r"(?<![0-9])([0-9]{10})(?![0-9])")
PHONE_RE = re.compile(r"(?<![0-9])(1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8})(?![0-9])")
TICKET_RE = re.compile(r"[Gg][Dd][0-9]{8}-[0-9]{4,7}")


def metadata(tracker: Tracker) -> dict[str, Any]:
    """What the hotline sends with every message: channel, conversation_id, maybe phone and location."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return event.get("metadata") or {}
    return {}


def channel(tracker: Tracker) -> str:
    """The channel the hotline names with every message; the hotline's API checks it against its registry.

    Only `rasa shell` and `rasa test` send no metadata at all: they stand for the web chat.
    """
    return str(metadata(tracker).get("channel") or "web")


def user_texts(tracker: Tracker, since_action: str | None = None) -> str:
    """Everything the resident wrote (since a form started), for keyword matching and descriptions."""
    texts: list[str] = []
    for event in reversed(tracker.events):
        if since_action and event.get("event") == "action" and event.get("name") == since_action:
            break
        if event.get("event") == "user" and event.get("text") and not event["text"].startswith("/"):
            texts.append(event["text"])
    return "；".join(reversed(texts))


def find_phone(text: str) -> str | None:
    match = PHONE_RE.search(text.replace(" ", ""))
    return match.group(1).replace("-", "") if match else None


def find_account(text: str) -> str | None:
    match = ACCOUNT_RE.search(text.replace(" ", ""))
    return match.group(1) if match else None


ROUTING_INTENTS = ("repair", "complaint", "billing", "inquiry")
FORM_CATEGORIES = {"repair_form": "repair", "complaint_form": "complaint", "billing_form": "billing",
                   "status_form": "inquiry"}


def guess_category(tracker: Tracker) -> str | None:
    """The category the resident was in: the open form, else the last routing intent."""
    loop = (tracker.active_loop or {}).get("name")
    if loop in FORM_CATEGORIES:
        return FORM_CATEGORIES[loop]
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            if intent in ROUTING_INTENTS:
                return intent
    return None


def learned(tracker: Tracker, category: str | None) -> dict[str, Any]:
    """What the bot found out, so the agent's ticket form starts filled in."""
    meta = metadata(tracker)
    words = user_texts(tracker)
    found: dict[str, Any] = {
        "problem": tracker.get_slot("problem"),
        "account_number": tracker.get_slot("account_number") or find_account(words),
        "phone": tracker.get_slot("phone") or meta.get("phone") or find_phone(words),
        "address": tracker.get_slot("address") or meta.get("address"),
        "description": words[:4000],
    }
    if category:
        found["business_type"] = knowledge.business_type(category, words)
        found["urgent"] = knowledge.is_urgent(words) or None
    if found["address"] and find_account(found["address"]):  # "我的户号是…" is not an address
        found["address"] = None
    return {k: v for k, v in found.items() if v}


def handoff(dispatcher: CollectingDispatcher, reason: str, text: str, category: str | None = None,
            tracker: Tracker | None = None) -> None:
    """The one documented signal to the channels: a custom payload with handoff=true.

    The bot never pretends to be a person; the channel moves the conversation
    to the agents' queue when it sees this payload, and keeps `learned` for the
    agent's ticket form.
    """
    payload: dict[str, Any] = {"handoff": True, "reason": reason, "category": category}
    if tracker is not None:
        payload["category"] = category = category or guess_category(tracker)
        payload["learned"] = learned(tracker, category)
    dispatcher.utter_message(text=text)
    dispatcher.utter_message(json_message=payload)


def api_down(dispatcher: CollectingDispatcher, category: str | None = None, tracker: Tracker | None = None) -> None:
    handoff(dispatcher, "api_unavailable",
            "抱歉，业务系统暂时无法处理您的请求，我已为您转接人工客服，请稍候；您刚才说的内容都已记录。",
            category, tracker)


def mask_name(name: str) -> str:
    return name[:1] + "*" * max(len(name) - 1, 1) if name else ""
