"""Actions that answer from, or write to, the shared store through the hotline API."""
from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActiveLoop, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import escalation, hotline_api, knowledge, outages
from actions.binding import FOUR_DIGITS, NAMED, bound_accounts, conversation_of, proof_in
from actions.common import (
    FORM_CATEGORIES,
    TICKET_RE,
    api_down,
    channel,
    confidence_of,
    find_account,
    find_phone,
    handoff,
    intent_of,
    looks_like_address,
    metadata,
    problem_words,
    user_events,
)
from actions.forms import PROBLEM_FORMS, is_general_billing, joined_problem, names_a_problem
from actions.verification import NO_RESIDENT, PROOF_OFFER, TOO_MANY_LOOKUPS, offer_proof, proving

RESET_AFTER_TICKET = ["problem", "address", "leak_location", "gave_up"]
FORM_NAMES = {"repair_form": "报修", "complaint_form": "投诉", "billing_form": "水费查询", "status_form": "工单查询",
              "binding_form": "绑定户号"}
INTENT_CATEGORY = {"repair": "repair", "complaint": "complaint", "billing": "billing", "inquiry": "inquiry",
                   "ticket_status": "inquiry"}
ANSWERED_BY_FORM = {"complaint": "complaint_form", "billing": "billing_form", "ticket_status": "status_form"}


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


async def _open_duplicate(payload: dict[str, Any]) -> dict[str, Any] | None:
    """An open ticket of the same resident (account or phone) for the same thing: the same category
    and business type, or the same category at the same account and address (no address given
    means the account's own)."""
    seen: dict[str, dict[str, Any]] = {}
    for key, value in (("account", payload.get("account_number")), ("phone", payload.get("phone"))):
        if value:
            for t in await hotline_api.find_tickets(**{key: str(value)}, status="open", limit="20"):
                seen[t["number"]] = t
    for t in sorted(seen.values(), key=lambda t: t["created_at"] or "", reverse=True):
        if t["category"] != payload["category"]:
            continue
        same_kind = t["business_type"] == payload.get("business_type")
        same_place = bool(payload.get("account_number")) and t["account_number"] == payload.get("account_number") \
            and payload.get("address") in (None, "", t["address"])
        if same_kind or same_place:
            return t
    return None


async def _create_or_add(dispatcher: CollectingDispatcher, tracker: Tracker, payload: dict[str, Any],
                         check_duplicate: bool = True) -> dict[str, Any] | None:
    """Create the ticket, or add the resident's words to their open ticket of the same kind.

    Returns the new ticket, or None when the words went to an existing one (the resident is told
    its number and status, and may answer that it is a different problem).
    """
    if check_duplicate:
        existing = await _open_duplicate(payload)
        if existing is not None:
            await hotline_api.add_comment(existing["number"], f"居民补充（{payload['channel']}）：{payload['description']}")
            which = "已有工单在处理"  # an account's tickets are for its proven owner (or who reported it here)
            if await _may_see(tracker, existing):
                which = (f"已有工单 {existing['number']}（{existing['business_type_name']}，"
                         f"目前{existing['status_label']}）")
            dispatcher.utter_message(text=(
                f"您反映的问题{which}，我已把您刚才说的补充进去，工作人员会一并处理。"
                "如果这是另一个问题，请回复“不是同一个问题”，我为您另外登记。"))
            return None
    return await hotline_api.create_ticket(payload)


async def _may_see(tracker: Tracker, ticket: dict[str, Any]) -> bool:
    """Whether this resident may hear a ticket's number and status: it came from this conversation, or the
    hotline counts them verified for its account."""
    conversation = conversation_of(tracker)
    if conversation is not None and ticket.get("conversation_id") == conversation:
        return True
    if not ticket.get("account_number"):
        return False
    try:
        return bool((await hotline_api.resident_statement(conversation, ticket["account_number"]))["verified"])
    except (hotline_api.ApiUnavailable, hotline_api.NotFound, hotline_api.Rejected):
        return False


def _reset(tracker: Tracker) -> list[Any]:
    return [SlotSet(s, None) for s in RESET_AFTER_TICKET if tracker.get_slot(s) is not None]


def _repair_reply(ticket: dict[str, Any]) -> str:
    lead = "情况紧急，已按紧急抢修处理。" if ticket["priority"] == "urgent" else ""
    return (f"{lead}已为您登记报修（{ticket['business_type_name']}），工单号 {ticket['number']}，"
            f"由{ticket['department_name']}受理。维修人员将在{ticket['response_limit_text']}内与您联系并到达现场，"
            f"{ticket['resolution_limit_text']}内修复。您可以随时发送“查询工单”了解进度。")


def _complaint_reply(ticket: dict[str, Any]) -> str:
    reply = ticket["response_limit_text"]
    reply = "当日" if reply == "当日" else f"{reply}内"
    return (f"非常抱歉给您带来不便。您的投诉已登记，工单号 {ticket['number']}，由{ticket['department_name']}负责处理，"
            f"我们将在{reply}答复您，{ticket['resolution_limit_text']}内办结。")


class ActionRepairStart(Action):
    """A repair report starts here: a current outage in the resident's area is told first."""

    def name(self) -> str:
        return "action_repair_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        return await start_repair(dispatcher, tracker)


async def start_repair(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[Any]:
    text = (tracker.latest_message or {}).get("text") or ""
    events: list[Any] = [SlotSet("problem", text)] if not tracker.get_slot("problem") else []
    if knowledge.business_type("repair", text) in outages.NO_WATER:
        try:
            area = await outages.area_for(tracker, text)
            found = await outages.current(area) if area else []
        except hotline_api.ApiUnavailable:
            area, found = None, []
        if area and found:
            dispatcher.utter_message(text=outages.describe(area, found) + (
                "\n您家没水应该是这个原因，恢复供水后仍没有水请再告诉我。"
                "如果是别的问题（比如只有您家没水、漏水），请回复“不是”，我帮您报修。"))
            return events + [SlotSet("pending", "outage")]
    return events + [FollowupAction("repair_form")]


class ActionCreateRepairTicket(Action):
    def name(self) -> str:
        return "action_create_repair_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        if tracker.get_slot("gave_up"):
            return [SlotSet("gave_up", None)]  # the form offered a person instead
        words = problem_words(tracker) or str(tracker.get_slot("problem") or "")
        business_type = knowledge.business_type("repair", words) or "repair_other"
        urgent = business_type == "burst_main" or knowledge.is_urgent(words)
        side = tracker.get_slot("leak_location")
        if side == "owner":
            return self._owner_side(dispatcher, tracker, words)
        if side == "owner_paid":
            words = f"【表后户内，有偿维修】{words}"
            business_type, urgent = "repair_other", False
        payload = _ticket_payload(tracker, "repair", words, business_type=business_type,
                                  priority="urgent" if urgent else "normal")
        try:
            ticket = await _create_or_add(dispatcher, tracker, payload)
        except hotline_api.Rejected as exc:
            dispatcher.utter_message(text=f"登记报修时信息有误：{exc.message}。请核对后再试，或回复“人工客服”。")
            return _reset(tracker)
        except hotline_api.ApiUnavailable:
            api_down(dispatcher, "repair", tracker)
            return []
        if ticket is None:
            return _reset(tracker) + [SlotSet("pending", "duplicate"), SlotSet("pending_ticket", payload)]
        dispatcher.utter_message(text=_repair_reply(ticket))
        return [SlotSet("ticket_number", ticket["number"])] + _reset(tracker)

    def _owner_side(self, dispatcher: CollectingDispatcher, tracker: Tracker, words: str) -> list[Any]:
        rules = knowledge.boundary()
        if rules["indoor"] == "advice":
            dispatcher.utter_message(text=rules["answer"])
            return _reset(tracker)
        dispatcher.utter_message(text=f"{rules['answer']}\n{rules['offer']}")
        return [SlotSet("pending", "paid_repair"), SlotSet("pending_ticket", {"problem": words})]


class ActionCreateComplaintTicket(Action):
    def name(self) -> str:
        return "action_create_complaint_ticket"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        if tracker.get_slot("gave_up"):
            return [SlotSet("gave_up", None)]
        # The complaint's own words: not a repair reported (or parked) before it in the same conversation.
        words = problem_words(tracker, intents=("complaint",)) or str(tracker.get_slot("problem") or "")
        angry = _escalation(tracker, words)
        business_type = knowledge.business_type("complaint", words) or "complaint_service"
        payload = _ticket_payload(tracker, "complaint", words, business_type=business_type,
                                  priority="urgent" if angry else None)
        try:
            ticket = await _create_or_add(dispatcher, tracker, payload)
        except hotline_api.Rejected as exc:
            dispatcher.utter_message(text=f"登记投诉时信息有误：{exc.message}。请核对后再试，或回复“人工客服”。")
            return _reset(tracker)
        except hotline_api.ApiUnavailable:
            api_down(dispatcher, "complaint", tracker)
            return []
        events: list[Any] = _reset(tracker)
        if ticket is None:
            events += [SlotSet("pending", "duplicate"), SlotSet("pending_ticket", payload)]
        else:
            dispatcher.utter_message(text=_complaint_reply(ticket))
            events.append(SlotSet("ticket_number", ticket["number"]))
        if angry:
            handoff(dispatcher, "angry", "我这就为您转接人工客服，请稍候。", "complaint", tracker)
        return events


def _escalation(tracker: Tracker, words: str) -> bool:
    """Anger and escalation risk of this complaint, from the whole of what the resident said."""
    complaints = [e for e in user_events(tracker) if intent_of(e) == "complaint"]
    if not complaints:
        return escalation.is_escalation(words, 0.0)
    latest = max(complaints, key=lambda e: confidence_of(e, "complaint"))
    earlier = [e["text"] for e in complaints if e is not latest]
    return any(escalation.is_escalation(e["text"], confidence_of(e, "complaint"), earlier) for e in complaints) \
        or escalation.is_escalation(words, confidence_of(latest, "complaint"), earlier)


class ActionAnswerBilling(Action):
    def name(self) -> str:
        return "action_answer_billing"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        if tracker.get_slot("gave_up"):
            return [SlotSet("gave_up", None)]
        account = tracker.get_slot("account_number")
        text = (tracker.latest_message or {}).get("text") or ""
        accounts = [account] if account else []
        if not accounts and not is_general_billing(text):
            accounts = [a["account_number"] for a in await bound_accounts(tracker)][:3]  # a bound WeChat user
        if not accounts or is_general_billing(text):
            topic = knowledge.faq_topic(text, knowledge.BILLING_TOPICS)
            if topic:
                dispatcher.utter_message(text=topic["answer"])
                return [SlotSet("last_topic", topic["key"])]
            dispatcher.utter_message(text="查询水费需要您的10位户号（水费单上有），随时发给我就可以。")
            return []
        statements, owing, unproven = [], False, []
        for number in accounts:
            try:
                data = await hotline_api.resident_statement(conversation_of(tracker), number)
            except hotline_api.NotFound:
                dispatcher.utter_message(text=f"没有找到户号 {number}，请核对后重新查询。")
                return [SlotSet("account_number", None)]
            except hotline_api.TooManyTries:
                dispatcher.utter_message(text=TOO_MANY_LOOKUPS)
                return [SlotSet("account_number", None)]
            except hotline_api.Rejected:
                dispatcher.utter_message(text=NO_RESIDENT)
                return []
            except hotline_api.ApiUnavailable:
                api_down(dispatcher, "billing", tracker)
                return []
            if data["verified"]:
                statements.append("\n".join(self._statement(data)))
                owing = owing or bool(data["arrears_fen"] + data["outstanding_fen"])
            else:
                statements.append(self._amount_due(data))
                owing = owing or bool(data.get("amount_due_fen"))
                unproven.append(number)
        lines = ["\n\n".join(statements)]
        topic = knowledge.faq_by_key("payment")
        if topic and owing:
            lines.append(topic["answer"])
        said = "；".join(e["text"] for e in user_events(tracker, since_action="billing_form"))
        if not unproven and any(w in said for w in ("高", "贵", "多扣", "不对", "水表有问题", "读数", "抄错", "翻了")):
            lines.append("如果您认为水量或读数不对，可以核对水表上的读数；需要核查的话回复“人工客服”，"
                         "或回复“报修水表”安排人员检查水表。")
        if unproven:
            lines.append(PROOF_OFFER["billing"])
        dispatcher.utter_message(text="\n".join(lines))
        return offer_proof(unproven[0], "billing") if unproven else []

    @staticmethod
    def _amount_due(data: dict[str, Any]) -> str:
        """What anyone who types the number hears: the masked name and the amount due, or nothing."""
        if data["disclosure"] == "none":
            return f"户号 {data['account_number']}：为保护用户信息，核实身份后才能查询。"
        owed = f"目前应缴 {data['amount_due']} 元。" if data["amount_due_fen"] else "目前没有待缴水费。"
        return f"户号 {data['account_number']}（{data['name']}）：{owed}"

    @staticmethod
    def _statement(data: dict[str, Any]) -> list[str]:
        lines = [f"户号 {data['account_number']}（{data['name']}）："]
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
            lines.append(f"{year}年{int(month)}月：用水 {bill['volume_m3']} 吨，水费 {bill['amount']} 元，{state}。"
                         f"（读数 {bill['reading_previous']}→{bill['reading_current']}）")
        return lines


class ActionAnswerInquiry(Action):
    """Answer from the knowledge base; a ticket only when the resident wants a follow-up."""

    def name(self) -> str:
        return "action_answer_inquiry"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        return await answer_inquiry(dispatcher, tracker)


async def answer_inquiry(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[Any]:
    text = (tracker.latest_message or {}).get("text") or ""
    topic = knowledge.faq_topic(text)
    if topic and topic["key"] == "outage":
        return await _outages(dispatcher, tracker)
    if topic:
        dispatcher.utter_message(text=topic["answer"])
        return [SlotSet("last_topic", topic["key"]), SlotSet("pending", None)]
    previous = knowledge.faq_by_key(tracker.get_slot("last_topic") or "")
    if previous and previous["answer"]:
        dispatcher.utter_message(text=(
            f"关于{previous['title']}：{previous['answer']}\n"
            "如果还没有解答您的问题，回复“是”，我登记下来请工作人员答复您。"))
    else:
        dispatcher.utter_message(text=(
            "这个问题我暂时回答不了。需要我登记下来，请工作人员答复您吗？回复“是”登记；"
            "着急的话也可以回复“人工客服”。"))
    return [SlotSet("pending", "inquiry_ticket"), SlotSet("pending_ticket", {"problem": text})]


async def _outages(dispatcher: CollectingDispatcher, tracker: Tracker) -> list[Any]:
    area = await outages.area_for(tracker, (tracker.latest_message or {}).get("text") or "")
    try:
        found = await hotline_api.get_outages(area)
    except hotline_api.NotFound:
        found = await hotline_api.get_outages()
    except hotline_api.ApiUnavailable:
        api_down(dispatcher, "inquiry", tracker)
        return []
    if not found:
        where = f"{area}" if area else "全市"
        dispatcher.utter_message(text=f"{where}目前没有停水通知。如果您家里没水，可以直接告诉我，我帮您报修。")
        return [SlotSet("last_topic", "outage")]
    lines = ["目前的停水通知："]
    for o in found[:5]:
        kind = "计划停水" if o["planned"] else "抢修停水"
        lines.append(f"【{o['area']}·{kind}】{o['title']}，{outages.local(o['starts_at'])} 至 "
                     f"{outages.local(o['ends_at'])}。{o['detail']}")
    lines.append("如果不在上述范围内却没有水，请告诉我地址，我帮您报修。")
    dispatcher.utter_message(text="\n".join(lines))
    return [SlotSet("last_topic", "outage")]


class ActionTicketStatus(Action):
    def name(self) -> str:
        return "action_ticket_status"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        if tracker.get_slot("gave_up"):
            return [SlotSet("gave_up", None)]
        # What the form took for a ticket number may be the account it skipped validating (户号3100000012).
        found = TICKET_RE.search(str(tracker.get_slot("ticket_number") or ""))
        number = found.group(0).upper() if found else None
        account = tracker.get_slot("account_number")
        try:
            if number:
                tickets: list[dict[str, Any]] | None = [await hotline_api.get_ticket(number)]
            elif account:
                # An account's tickets are its proven owner's to see.
                tickets = await hotline_api.resident_tickets(conversation_of(tracker), account)
                if tickets is None:
                    dispatcher.utter_message(text=PROOF_OFFER["tickets"])
                    return offer_proof(account, "tickets")
            else:
                tickets = await hotline_api.find_tickets(phone=metadata(tracker).get("phone", ""))
        except hotline_api.NotFound:
            if not number:
                dispatcher.utter_message(text=f"没有找到户号 {account}，请核对后重新查询。")
                return [SlotSet("account_number", None)]
            dispatcher.utter_message(text=f"没有找到工单 {number}，请核对工单号。")
            return [SlotSet("ticket_number", None)]
        except hotline_api.TooManyTries:
            dispatcher.utter_message(text=TOO_MANY_LOOKUPS)
            return [SlotSet("account_number", None)]
        except hotline_api.Rejected:
            dispatcher.utter_message(text=NO_RESIDENT)
            return []
        except hotline_api.ApiUnavailable:
            api_down(dispatcher, tracker=tracker)
            return []
        return self.tell(dispatcher, tickets)

    @staticmethod
    def tell(dispatcher: CollectingDispatcher, tickets: list[dict[str, Any]]) -> list[Any]:
        if not tickets:
            dispatcher.utter_message(text="没有查到您名下的工单。如需报修或投诉，请直接告诉我情况。")
            return []
        for t in tickets:
            line = (f"工单 {t['number']}（{t['business_type_name']}）：{t['status_label']}，"
                    f"责任部门 {t['department_name']}")
            if t["status"] in ("new", "assigned", "in_progress"):
                line += f"，办理时限 {outages.local(t['resolution_due_at'])}"
                if t["overdue"]:
                    line += "（已超时，已督办）"
            elif t["resolved_at"]:
                line += f"，已于 {outages.local(t['resolved_at'])} 办结"
            dispatcher.utter_message(text=line + "。")
        return [SlotSet("ticket_number", None)]


class ActionHandoff(Action):
    def name(self) -> str:
        return "action_handoff"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        handoff(dispatcher, "requested", "好的，正在为您转接人工客服，请稍候。人工客服接入后会在这里直接回复您。",
                tracker=tracker)
        return [SlotSet("pending", None)]


CLEARLY_ANOTHER_REQUEST = 0.8  # below this confidence a message inside a form is taken as an answer attempt
SHAPED_SLOTS = {"address", "phone", "account_number", "ticket_number", "leak_location", "binding_proof"}


def _answers_the_question(form: str, slot: str | None, intent: str, text: str, confidence: float = 1.0) -> bool:
    """Whether a message classified as a request is to be taken as the answer to the form's question.

    It is when it looks like what was asked (an address, a phone, a 10-digit account…), or when it
    is about the form's own subject (the form's validator then checks it and asks again at most once).
    """
    if confidence < CLEARLY_ANOTHER_REQUEST:
        return True  # not clearly another request: the form's validator judges it
    if slot == "address" and (looks_like_address(text) or find_account(text)):
        return True
    if slot == "phone" and find_phone(text):
        return True
    if slot == "account_number" and find_account(text):
        return True
    if slot == "ticket_number" and (TICKET_RE.search(text) or find_account(text)):
        return True
    if slot == "leak_location" and knowledge.leak_side(text) is not None:
        return True
    if slot == "binding_proof" and (FOUR_DIGITS.search(text) or NAMED.search(text) and proof_in(text)):
        return True  # 户主张建国 reads like a question to the classifier; other requests are taken as requests
    if slot in SHAPED_SLOTS and form in PROBLEM_FORMS and names_a_problem(text):
        return False  # a phone or an address was asked and a problem came: more to tell, not the answer
    return INTENT_CATEGORY.get(intent) == FORM_CATEGORIES.get(form) and intent != "ticket_status"


class ActionSwitchTopic(Action):
    """A routing intent or stop inside a form: continue, stop, or answer the new request.

    The form continues when the message answers its question; 取消/算了/不用了 stop it; a
    different request is answered as that request, and the resident can say 继续 to go back.
    """

    def name(self) -> str:
        return "action_switch_topic"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        form = (tracker.active_loop or {}).get("name") or ""
        slot = tracker.get_slot("requested_slot")
        latest = tracker.latest_message or {}
        intent = (latest.get("intent") or {}).get("name") or ""
        text = latest.get("text") or ""
        stop = [ActiveLoop(None), SlotSet("requested_slot", None)]
        confidence = float((latest.get("intent") or {}).get("confidence") or 0.0)
        if intent != "stop" and _answers_the_question(form, slot, intent, text, confidence):
            # The slot mappings skip requests: set the answer and start the form again, which
            # validates the slots it finds filled (and asks again, or offers a person).
            return ([SlotSet(slot, text)] if slot else []) + stop + [FollowupAction(form)]
        if slot:
            stop.append(SlotSet(slot, None))  # the text filled the slot before this action ran
        offered_proof = proving(tracker) is not None  # an offer the resident need not take: nothing to resume
        if intent == "stop":
            what = "不核实了" if offered_proof else f"{FORM_NAMES.get(form, '')}已取消"
            dispatcher.utter_message(text=f"好的，{what}。还有其他可以帮您的吗？")
            return stop + [SlotSet("problem", None), SlotSet("pending", None)]
        if form in PROBLEM_FORMS and INTENT_CATEGORY.get(intent) == FORM_CATEGORIES.get(form) and not offered_proof:
            return self._more_of_the_same(dispatcher, tracker, form, text, stop)
        if offered_proof:
            events: list[Any] = stop + [SlotSet("pending", None)]
        else:
            dispatcher.utter_message(text=f"好的，先看您的新问题。刚才的{FORM_NAMES.get(form, '')}还没办完，"
                                          "之后回复“继续”可以接着办。")
            events = stop + [SlotSet("pending", f"resume:{form}")]
        if intent == "repair":
            return events + [SlotSet("problem", text)] + [
                e for e in await start_repair(dispatcher, tracker) if not _sets_problem(e)]
        if intent == "inquiry":
            return events + [e for e in await answer_inquiry(dispatcher, tracker) if not _sets_pending(e)]
        if intent == "complaint":
            events.append(SlotSet("problem", text))
        return events + [FollowupAction(ANSWERED_BY_FORM[intent])]


    @staticmethod
    def _more_of_the_same(dispatcher: CollectingDispatcher, tracker: Tracker, form: str, text: str,
                          stop: list[Any]) -> list[Any]:
        """A further problem of the form's own kind (another repair while a repair's phone was asked):
        it joins this report's problem, and the form asks its question again."""
        dispatcher.utter_message(text=f"好的，这个情况也已记下，一并{FORM_NAMES.get(form, '登记')}。")
        return stop + [SlotSet("problem", joined_problem(tracker, text)), FollowupAction(form)]


def _sets_problem(event: Any) -> bool:
    return isinstance(event, dict) and event.get("event") == "slot" and event.get("name") == "problem"


def _sets_pending(event: Any) -> bool:
    return isinstance(event, dict) and event.get("event") == "slot" and event.get("name") == "pending" \
        and event.get("value") is None


CLEAR_YES_OR_NO = 0.8


YES_OR_NO_WORDS = re.compile(r"是|对|好|嗯|行|可以|要|没错|成|中|ok|OK|不|没|别|算了|取消|继续")


def _unsure(tracker: Tracker) -> bool:
    """A 是/不是 that the classifier is not sure of and that holds no yes or no word, when nothing was
    asked: not understood, rather than answered as if it were a yes or a no (阿巴阿巴 is not 好的)."""
    latest = tracker.latest_message or {}
    confidence = float((latest.get("intent") or {}).get("confidence") or 0.0)
    return confidence < CLEAR_YES_OR_NO and not YES_OR_NO_WORDS.search(latest.get("text") or "")


class ActionAffirm(Action):
    """是 / 继续: what it means depends on what the bot asked last (`pending`)."""

    def name(self) -> str:
        return "action_affirm"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        pending = tracker.get_slot("pending") or ""
        ticket = tracker.get_slot("pending_ticket") or {}
        clear = [SlotSet("pending", None), SlotSet("pending_ticket", None)]
        if not pending and _unsure(tracker):
            return await ActionDefaultFallback().run(dispatcher, tracker, domain)
        if pending.startswith("resume:"):
            return clear + [FollowupAction(pending.split(":", 1)[1])]
        if pending == "handoff":
            handoff(dispatcher, "requested", "好的，正在为您转接人工客服，请稍候。", tracker=tracker)
            return clear
        if pending == "paid_repair":
            return clear + [SlotSet("problem", ticket.get("problem")), SlotSet("leak_location", "owner_paid"),
                            FollowupAction("repair_form")]
        if pending == "inquiry_ticket":
            return clear + await self._inquiry_ticket(dispatcher, tracker, str(ticket.get("problem") or ""))
        if pending in ("duplicate", "outage"):
            dispatcher.utter_message(text="好的。还有其他可以帮您的吗？")
            return clear
        dispatcher.utter_message(response="utter_anything_else")
        return clear

    async def _inquiry_ticket(self, dispatcher: CollectingDispatcher, tracker: Tracker, text: str) -> list[Any]:
        try:
            ticket = await hotline_api.create_ticket(_ticket_payload(tracker, "inquiry", text or "居民咨询"))
        except (hotline_api.ApiUnavailable, hotline_api.Rejected):
            api_down(dispatcher, "inquiry", tracker)
            return []
        dispatcher.utter_message(text=(
            f"已为您登记咨询工单 {ticket['number']}，工作人员将在{ticket['response_limit_text']}内答复您。"))
        return [SlotSet("ticket_number", ticket["number"])]


class ActionDeny(Action):
    """不是 / 不用了 / 取消 outside a form."""

    def name(self) -> str:
        return "action_deny"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        pending = tracker.get_slot("pending") or ""
        ticket = tracker.get_slot("pending_ticket")
        if not pending and _unsure(tracker):
            return await ActionDefaultFallback().run(dispatcher, tracker, domain)
        clear = [SlotSet("pending", None), SlotSet("pending_ticket", None)]
        if pending == "outage":
            dispatcher.utter_message(text="好的，那我为您登记报修。")
            return clear + [FollowupAction("repair_form")]
        if pending == "duplicate" and isinstance(ticket, dict) and ticket.get("category"):
            try:
                created = await _create_or_add(dispatcher, tracker, ticket, check_duplicate=False)
            except (hotline_api.ApiUnavailable, hotline_api.Rejected):
                api_down(dispatcher, ticket["category"], tracker)
                return clear
            assert created is not None
            reply = _repair_reply(created) if created["category"] == "repair" else _complaint_reply(created)
            dispatcher.utter_message(text=f"好的，已作为新问题另外登记。{reply}")
            return clear + [SlotSet("ticket_number", created["number"])]
        if pending.startswith("resume:"):
            dispatcher.utter_message(text="好的，不继续了。还有其他可以帮您的吗？")
            return clear + [SlotSet("problem", None)]
        dispatcher.utter_message(response="utter_anything_else")
        return clear


NOT_UNDERSTOOD = "我没有理解您的意思"  # in utter_default


class ActionDefaultFallback(Action):
    """Not understood: say so once; the second time in a row, hand over to a person."""

    def name(self) -> str:
        return "action_default_fallback"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        # Misses in a row: this message, and each earlier one the bot answered with "not understood"
        # (whatever the classifier called it).
        misses, said_default = 0, False
        for event in reversed(tracker.events):
            if event.get("event") == "bot" and NOT_UNDERSTOOD in (event.get("text") or ""):
                said_default = True
            elif event.get("event") == "user":
                if misses and not said_default:
                    break
                misses, said_default = misses + 1, False
        if misses >= 2:
            handoff(dispatcher, "fallback", "抱歉，我还是没能理解。正在为您转接人工客服，请稍候。", tracker=tracker)
        else:
            dispatcher.utter_message(response="utter_default")
        return []
