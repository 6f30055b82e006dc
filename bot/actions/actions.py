"""Actions that answer from, or write to, the shared store through the hotline API."""
from __future__ import annotations

import datetime as dt
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import hotline_api, knowledge
from actions.common import api_down, channel, find_account, handoff, mask_name, metadata, user_texts

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
RESET_AFTER_TICKET = ["problem", "address"]


def _local(iso: str | None) -> str:
    if not iso:
        return ""
    return dt.datetime.fromisoformat(iso).astimezone(SHANGHAI).strftime("%m月%d日%H:%M")


def _ticket_payload(tracker: Tracker, category: str, description: str, **extra: Any) -> dict[str, Any]:
    meta = metadata(tracker)
    payload: dict[str, Any] = {"category": category, "description": description[:4000],
                               "channel": channel(tracker)}
    phone = tracker.get_slot("phone") or meta.get("phone")
    if phone:
        payload["phone"] = phone
    if tracker.get_slot("account_number"):
        payload["account_number"] = tracker.get_slot("account_number")
    address = tracker.get_slot("address") or meta.get("address")
    if address and not find_account(address):  # "我的户号是…" is not an address
        payload["address"] = address
    for key in ("latitude", "longitude"):
        if meta.get(key) is not None:
            payload[key] = meta[key]
    if isinstance(meta.get("conversation_id"), int):
        payload["conversation_id"] = meta["conversation_id"]
    payload.update({k: v for k, v in extra.items() if v})
    return payload


class ActionCreateRepairTicket(Action):
    def name(self) -> str:
        return "action_create_repair_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        words = user_texts(tracker, since_action="repair_form") or (tracker.get_slot("problem") or "")
        problem = tracker.get_slot("problem") or words
        business_type = knowledge.business_type("repair", words) or "repair_other"
        urgent = business_type == "burst_main" or knowledge.is_urgent(words)
        try:
            ticket = await hotline_api.create_ticket(_ticket_payload(
                tracker, "repair", problem, business_type=business_type,
                priority="urgent" if urgent else "normal"))
        except hotline_api.Rejected as exc:
            dispatcher.utter_message(text=f"登记报修时信息有误：{exc.message}。请核对后再试，或回复“人工客服”。")
            return [SlotSet(s, None) for s in RESET_AFTER_TICKET]
        except hotline_api.ApiUnavailable:
            api_down(dispatcher, "repair", tracker)
            return []
        lead = "情况紧急，已按紧急抢修处理。" if ticket["priority"] == "urgent" else ""
        dispatcher.utter_message(text=(
            f"{lead}已为您登记报修（{ticket['business_type_name']}），工单号 {ticket['number']}，"
            f"由{ticket['department_name']}受理。维修人员将在{ticket['response_limit_text']}内与您联系并到达现场，"
            f"{ticket['resolution_limit_text']}内修复。您可以随时发送“查询工单”了解进度。"))
        return [SlotSet("ticket_number", ticket["number"])] + [SlotSet(s, None) for s in RESET_AFTER_TICKET]


class ActionCreateComplaintTicket(Action):
    def name(self) -> str:
        return "action_create_complaint_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        words = user_texts(tracker, since_action="complaint_form") or (tracker.get_slot("problem") or "")
        problem = tracker.get_slot("problem") or words
        angry = knowledge.is_angry(words)
        business_type = knowledge.business_type("complaint", words) or "complaint_service"
        try:
            ticket = await hotline_api.create_ticket(_ticket_payload(
                tracker, "complaint", problem, business_type=business_type,
                priority="urgent" if angry else None))
        except hotline_api.Rejected as exc:
            dispatcher.utter_message(text=f"登记投诉时信息有误：{exc.message}。请核对后再试，或回复“人工客服”。")
            return [SlotSet(s, None) for s in RESET_AFTER_TICKET]
        except hotline_api.ApiUnavailable:
            api_down(dispatcher, "complaint", tracker)
            return []
        reply = ticket["response_limit_text"]
        reply = "当日" if reply == "当日" else f"{reply}内"
        dispatcher.utter_message(text=(
            f"非常抱歉给您带来不便。您的投诉已登记，工单号 {ticket['number']}，由{ticket['department_name']}负责处理，"
            f"我们将在{reply}答复您，{ticket['resolution_limit_text']}内办结。"))
        if angry:
            handoff(dispatcher, "angry", "我这就为您转接人工客服，请稍候。", "complaint", tracker)
        return [SlotSet("ticket_number", ticket["number"])] + [SlotSet(s, None) for s in RESET_AFTER_TICKET]


class ActionAnswerBilling(Action):
    def name(self) -> str:
        return "action_answer_billing"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        account = tracker.get_slot("account_number")
        try:
            data = await hotline_api.get_balance(account)
        except hotline_api.NotFound:
            dispatcher.utter_message(text=f"没有找到户号 {account}，请核对后重新查询。")
            return [SlotSet("account_number", None)]
        except hotline_api.ApiUnavailable:
            api_down(dispatcher, "billing", tracker)
            return []
        lines = [f"户号 {data['account_number']}（{mask_name(data['name'])}）："]
        if data["arrears_fen"]:
            lines.append(f"目前欠费 {data['arrears']} 元（{data['overdue_bills']} 期已过缴费期限，含违约金），请尽快缴纳。")
        else:
            lines.append("目前没有欠费。")
        if data["outstanding_fen"]:
            lines.append(f"本期待缴 {data['outstanding']} 元。")
        lines.append(f"预存余额 {data['balance']} 元。")
        for bill in data["bills"][:3]:
            year, month = bill["period"].split("-")
            state = "已缴" if bill["outstanding"] == "0.00" else f"未缴 {bill['outstanding']} 元"
            lines.append(f"{year}年{int(month)}月：用水 {bill['volume_m3']} 吨，水费 {bill['amount']} 元，{state}。")
        topic = knowledge.faq_topic("缴费")
        if topic and data["arrears_fen"] + data["outstanding_fen"]:
            lines.append(topic["answer"])
        text = user_texts(tracker)
        if any(w in text for w in ("高", "贵", "多扣", "不对", "水表有问题")):
            lines.append("如果您认为水量异常，可回复“报修水表”或“人工客服”，我们安排人员核查水表。")
        dispatcher.utter_message(text="\n".join(lines))
        return []


class ActionAnswerInquiry(Action):
    def name(self) -> str:
        return "action_answer_inquiry"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        text = tracker.latest_message.get("text") or ""
        topic = knowledge.faq_topic(text)
        if topic and topic["key"] == "outage":
            return await self._outages(dispatcher, tracker)
        if topic:
            dispatcher.utter_message(text=topic["answer"])
            return []
        try:
            ticket = await hotline_api.create_ticket(_ticket_payload(tracker, "inquiry", text))
        except (hotline_api.ApiUnavailable, hotline_api.Rejected):
            api_down(dispatcher, "inquiry", tracker)
            return []
        dispatcher.utter_message(text=(
            f"这个问题我需要请工作人员为您解答，已登记咨询工单 {ticket['number']}，"
            f"将在{ticket['response_limit_text']}内答复您。着急的话可以回复“人工客服”。"))
        return [SlotSet("ticket_number", ticket["number"])]

    async def _outages(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[Any]:
        area = None
        try:
            if tracker.get_slot("account_number"):
                area = (await hotline_api.get_customer(tracker.get_slot("account_number")))["area"]
            outages = await hotline_api.get_outages(area)
        except hotline_api.NotFound:
            outages = await hotline_api.get_outages()
        except hotline_api.ApiUnavailable:
            api_down(dispatcher, "inquiry", tracker)
            return []
        if not outages:
            where = f"{area}" if area else "全市"
            dispatcher.utter_message(text=f"{where}目前没有停水通知。如果您家里没水，可以直接告诉我，我帮您报修。")
            return []
        lines = ["目前的停水通知："]
        for o in outages[:5]:
            kind = "计划停水" if o["planned"] else "抢修停水"
            lines.append(f"【{o['area']}·{kind}】{o['title']}，{_local(o['starts_at'])} 至 {_local(o['ends_at'])}。{o['detail']}")
        lines.append("如果不在上述范围内却没有水，请告诉我地址，我帮您报修。")
        dispatcher.utter_message(text="\n".join(lines))
        return []


class ActionTicketStatus(Action):
    def name(self) -> str:
        return "action_ticket_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        number = tracker.get_slot("ticket_number")
        try:
            if number:
                tickets = [await hotline_api.get_ticket(number)]
            elif tracker.get_slot("account_number"):
                tickets = await hotline_api.find_tickets(account=tracker.get_slot("account_number"))
            else:
                tickets = await hotline_api.find_tickets(phone=metadata(tracker).get("phone", ""))
        except hotline_api.NotFound:
            dispatcher.utter_message(text=f"没有找到工单 {number}，请核对工单号。")
            return [SlotSet("ticket_number", None)]
        except (hotline_api.ApiUnavailable, hotline_api.Rejected):
            api_down(dispatcher, tracker=tracker)
            return []
        if not tickets:
            dispatcher.utter_message(text="没有查到您名下的工单。如需报修或投诉，请直接告诉我情况。")
            return []
        for t in tickets:
            line = (f"工单 {t['number']}（{t['business_type_name']}）：{t['status_label']}，"
                    f"责任部门 {t['department_name']}")
            if t["status"] in ("new", "assigned", "in_progress"):
                line += f"，办理时限 {_local(t['resolution_due_at'])}"
                if t["overdue"]:
                    line += "（已超时，已督办）"
            elif t["resolved_at"]:
                line += f"，已于 {_local(t['resolved_at'])} 办结"
            dispatcher.utter_message(text=line + "。")
        return [SlotSet("ticket_number", None)]


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        handoff(dispatcher, "requested", "好的，正在为您转接人工客服，请稍候。人工客服接入后会在这里直接回复您。",
                tracker=tracker)
        return []


class ActionDefaultFallback(Action):
    """Not understood: say so once; the second time in a row, hand over to a person."""

    def name(self) -> str:
        return "action_default_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        misses = 0
        for event in reversed(tracker.events):
            if event.get("event") == "user":
                if (event.get("parse_data") or {}).get("intent", {}).get("name") == "nlu_fallback" or misses == 0:
                    misses += 1
                    continue
                break
        if misses >= 2:
            handoff(dispatcher, "fallback", "抱歉，我还是没能理解。正在为您转接人工客服，请稍候。", tracker=tracker)
        else:
            dispatcher.utter_message(response="utter_default")
        return []
