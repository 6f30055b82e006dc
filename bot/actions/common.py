"""What the actions share: the channel's metadata, the handoff signal, phone/account/address checks,
and the resident's own words about the problem."""
from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import knowledge

ACCOUNT_RE = re.compile(r"(?<![0-9])([0-9]{10})(?![0-9])")
PHONE_RE = re.compile(r"(?<![0-9])(1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8})(?![0-9])")
TICKET_RE = re.compile(r"[Gg][Dd][0-9]{8}-[0-9]{4,7}")
ADDRESS_MARK = re.compile(r"[路街道巷号楼院村庄苑园里区厦寓栋]|单元|胡同|小区|家园|花园|门口|路口|交叉口|对面|旁边")
REQUEST_MARK = re.compile(r"多少钱|怎么|咋|吗|么|？|\?|查|交费|缴费|水费|欠费|人工|投诉|报修|取消|算了|不用|"
                          r"没水|停水|漏水|爆|坏了|不出水|发黄|水压")
GREETING_RE = re.compile(r"^(喂+|你好+|您好+|哈喽|嗨|在吗|在不在|有人吗|请问|打扰了?|麻烦(你|您)?了?)[，。！,.!\s]*")
HANDOFF_RE = re.compile(r"(请|麻烦|帮我|给我|快)?(帮我)?(转接?|接通?|找|要|换|叫|喊|让)?(一?个|一下)?"
                        r"(人工客服|人工服务|人工|真人客服|真人|活人|工作人员|客服人员|客服|坐席|领导|经理|负责人)"
                        r"(来|跟我说|处理|联系我|回复)?(吧|呗|啊|谢谢)?")
FILLER_RE = re.compile(r"[，。！？,.!?；;、~\s]+")
TICKET_ACTIONS = {"action_create_repair_ticket", "action_create_complaint_ticket", "action_handoff"}


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


def user_events(tracker: Tracker, since_action: str | None = None) -> list[dict[str, Any]]:
    """The resident's messages, oldest first (since `since_action` last ran, when given)."""
    found: list[dict[str, Any]] = []
    for event in reversed(tracker.events):
        if since_action and event.get("event") == "action" and event.get("name") == since_action:
            break
        if event.get("event") == "user" and event.get("text") and not event["text"].startswith("/"):
            found.append(event)
    return list(reversed(found))


def intent_of(event: dict[str, Any]) -> str | None:
    return ((event.get("parse_data") or {}).get("intent") or {}).get("name")


def confidence_of(event: dict[str, Any], intent: str) -> float:
    for ranked in (event.get("parse_data") or {}).get("intent_ranking") or []:
        if ranked.get("name") == intent:
            return float(ranked.get("confidence") or 0.0)
    return 0.0


def user_texts(tracker: Tracker, since_action: str | None = None) -> str:
    """Everything the resident wrote (since a form started)."""
    return "；".join(e["text"] for e in user_events(tracker, since_action))


def _since_last_ticket(tracker: Tracker) -> list[dict[str, Any]]:
    """The resident's messages after the last ticket or handoff of this conversation."""
    found: list[dict[str, Any]] = []
    for event in reversed(tracker.events):
        if event.get("event") == "action" and event.get("name") in TICKET_ACTIONS:
            break
        if event.get("event") == "user" and event.get("text") and not event["text"].startswith("/"):
            found.append(event)
    return list(reversed(found))


def clean_problem_text(text: str, address: str | None = None) -> str:
    """A message without greetings, phone and account numbers, the address and requests for a person."""
    text = GREETING_RE.sub("", text.strip())
    text = PHONE_RE.sub("", ACCOUNT_RE.sub("", text))
    text = re.sub(r"(我的)?(手机号?|电话|联系电话|户号)(码|是|为)?[:：]?\s*(?=[，。,.\s]|$)", "", text)
    if address and len(address) >= 4:
        text = text.replace(address, "")
    text = HANDOFF_RE.sub("", text)
    return FILLER_RE.sub(" ", text).strip(" ，。")


def problem_words(tracker: Tracker, address: str | None = None,
                  intents: tuple[str, ...] = ("repair", "complaint")) -> str:
    """The resident's own words about the problem since the last ticket: what goes in a description.

    Greetings, phone numbers, addresses, answers to the form's other questions and requests for a
    person are left out; a request for a person that also names the problem keeps the problem.
    """
    address = address or tracker.get_slot("address")
    parts: list[str] = []
    for event in _since_last_ticket(tracker):
        intent = intent_of(event)
        text = event["text"]
        if intent not in intents and intent != "handoff" and text != tracker.get_slot("problem"):
            continue
        if intent == "handoff" and not knowledge.any_business_keyword(text):
            continue
        cleaned = clean_problem_text(text, address)
        if len(re.sub(r"\W", "", cleaned)) >= 2 and cleaned not in parts:
            parts.append(cleaned)
    return "；".join(parts)


def find_phone(text: str) -> str | None:
    match = PHONE_RE.search(text.replace(" ", ""))
    return match.group(1).replace("-", "") if match else None


def find_account(text: str) -> str | None:
    match = ACCOUNT_RE.search(text.replace(" ", ""))
    return match.group(1) if match else None


def looks_like_address(text: str) -> bool:
    """An answer to "where": names a place (路, 小区, 号楼…) and is not a question or another request."""
    text = text.strip()
    return len(text) >= 4 and bool(ADDRESS_MARK.search(text)) and not REQUEST_MARK.search(text)


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
            intent = intent_of(event)
            if intent in ROUTING_INTENTS:
                return intent
            if intent == "ticket_status":
                return "inquiry"
    return None


def learned(tracker: Tracker, category: str | None) -> dict[str, Any]:
    """What the bot found out, each field from the slot or entity that holds it, for the agent's form."""
    meta = metadata(tracker)
    words = user_texts(tracker)
    address = tracker.get_slot("address")
    if not address or find_account(address) or not looks_like_address(address):
        address = meta.get("address") or next(
            (e["value"] for ev in user_events(tracker) for e in (ev.get("parse_data") or {}).get("entities") or []
             if e.get("entity") == "address"), None)
    description = problem_words(tracker, address, (category,) if category in ("billing", "inquiry")
                                else ("repair", "complaint"))
    found: dict[str, Any] = {
        "problem": tracker.get_slot("problem"),
        "account_number": tracker.get_slot("account_number") or find_account(words),
        "phone": tracker.get_slot("phone") or meta.get("phone") or find_phone(words),
        "address": address,
        "description": description[:4000],
    }
    if category:
        found["business_type"] = knowledge.business_type(category, description or words)
        found["urgent"] = knowledge.is_urgent(description) or None
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
