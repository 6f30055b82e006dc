"""Form validation: what each dialogue still needs, and whether an answer looks like what was asked.

An answer that does not fit is asked for again at most once more; after two unusable answers to
the same question the form stops and offers a person (`gave_up`, `pending` = handoff).
"""
from __future__ import annotations

import re
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import hotline_api, knowledge, outages
from actions.common import TICKET_RE, channel, find_account, find_phone, looks_like_address, metadata
from actions.verification import TOO_MANY_LOOKUPS

GENERIC = re.compile(r"我要|我想|想要|报修|报个修|投诉|一下|你好|您好|请问|麻烦|帮我|登记|维修|[，。！？,.!?\s]")
ASKED_WHAT = {"address": "地址", "phone": "联系电话", "account_number": "户号", "ticket_number": "工单号",
              "problem": "问题", "leak_location": "漏水位置", "binding_proof": "身份"}
GENERAL_BILLING = re.compile(r"我家|我的|俺家|欠费|欠多少|欠不欠|还欠|欠钱|余额|账单|账上|用了多少|用水量|记录|交了|"
                             r"到账|户号|查|这个月|上个月|本月|读数|这么高|这么贵|这么多|太高|不对|翻了|多扣|退")


PROBLEM_FORMS = ("repair_form", "complaint_form")  # the forms that take a problem in the resident's words
# Words of a request or a problem (水管爆了, 我要投诉, 查水费, 水是黄的…): a message holding them, asked
# for a phone or an address, tells more of the problem or asks something new; it is not a bad answer.
REQUEST_WORDS = re.compile(r"投诉|报修|爆|没水|停水|漏|水表|水费|欠费|工单|人工|客服|坏了|坏掉|黄|浑|臭|异味|井盖|"
                           r"水压|冒水|堵|不走|不转|态度|问题")


def names_a_problem(text: str) -> bool:
    return knowledge.any_business_keyword(text) or bool(REQUEST_WORDS.search(text))


def joined_problem(tracker: Tracker, text: str) -> str:
    """The form's problem with a further message of the same kind added (both go in the ticket)."""
    problem = str(tracker.get_slot("problem") or "")
    return f"{problem}；{text}" if problem and text not in problem else (problem or text)


def more_of_the_problem(slot: str, text: str, dispatcher: CollectingDispatcher,
                        tracker: Tracker) -> dict[str, Any] | None:
    """Asked for a phone or an address in a repair or complaint, the resident told more of the problem
    (a message the classifier was unsure of): it joins the problem and the question is asked again."""
    if (tracker.active_loop or {}).get("name") not in PROBLEM_FORMS or not names_a_problem(text):
        return None
    dispatcher.utter_message(text="好的，这个情况也已记下。")
    return {slot: None, "problem": joined_problem(tracker, text)}


RESTARTS = {"action_session_start", "action_create_repair_ticket", "action_create_complaint_ticket",
            "action_answer_billing", "action_ticket_status", "action_handoff"}


def answers_to(tracker: Tracker, slot: str) -> int:
    """How many answers the resident has given to the question for `slot` (this one included), since
    the last finished dialogue (a form resumed after another request keeps its count)."""
    events = list(tracker.events)
    start = max((i for i, e in enumerate(events) if e.get("event") == "action" and e.get("name") in RESTARTS),
                default=0)
    asked, count = None, 0
    told_more = slot in ("phone", "address") and (tracker.active_loop or {}).get("name") in PROBLEM_FORMS
    for event in events[start:]:
        if event.get("event") == "slot" and event.get("name") == "requested_slot":
            asked = event.get("value")
        elif event.get("event") == "user" and asked == slot \
                and not (told_more and names_a_problem(event.get("text") or "")):  # more of the problem
            count += 1
    return count


def unusable(slot: str, hint: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
    """Ask again once with a hint; after the second unusable answer stop and offer a person."""
    if answers_to(tracker, slot) >= 2:
        dispatcher.utter_message(text=(
            f"抱歉，我还是没能确认您的{ASKED_WHAT.get(slot, '信息')}。需要为您转人工客服吗？"
            "回复“是”转人工，回复“取消”结束。"))
        return {slot: None, "gave_up": slot, "pending": "handoff"}
    dispatcher.utter_message(text=hint)
    return {slot: None}


async def _check_account(value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         slot: str = "account_number") -> dict[str, Any]:
    account = find_account(str(value or ""))
    if not account:
        return unusable(slot, "户号是水费单上的10位数字，请核对后再发给我；不查了可以回复“取消”。", dispatcher, tracker)
    try:  # through the residents' door: a look-up of a number the resident has not proven counts there
        await hotline_api.resident_statement(metadata(tracker).get("conversation_id"), account)
    except hotline_api.NotFound:
        return unusable(slot, f"没有找到户号 {account}，请核对后重新输入；不查了可以回复“取消”。", dispatcher, tracker)
    except hotline_api.TooManyTries:
        if (tracker.active_loop or {}).get("name") not in ("billing_form", "status_form"):
            return {"account_number": account}  # a repair is taken all the same; the ticket checks the number
        dispatcher.utter_message(text=TOO_MANY_LOOKUPS)
        return {slot: None, "account_number": None, "gave_up": slot}
    except (hotline_api.ApiUnavailable, hotline_api.Rejected):
        pass  # checked again when the account is used (a ticket, a statement)
    return {"account_number": account}


def _check_phone(value: Any, dispatcher: CollectingDispatcher, tracker: Tracker) -> dict[str, Any]:
    phone = find_phone(str(value or ""))
    if phone:
        return {"phone": phone}
    more = more_of_the_problem("phone", str(value or ""), dispatcher, tracker)
    if more is not None:
        return more
    return unusable("phone", "这个号码好像不完整，请留一个11位手机号或带区号的固定电话。", dispatcher, tracker)


def _check_problem(value: Any) -> str | None:
    text = str(value or "").strip()
    if len(GENERIC.sub("", text)) < 2:
        return None  # the form asks with utter_ask_*_problem
    return text


def _stop_if_gave_up(tracker: Tracker, slots: list[str]) -> list[str]:
    return [] if tracker.get_slot("gave_up") else slots


class ValidateRepairForm(FormValidationAction):
    def name(self) -> str:
        return "validate_repair_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        slots = list(domain_slots)
        side = tracker.get_slot("leak_location")
        problem = str(tracker.get_slot("problem") or "")
        if side == "owner":
            return []  # after the meter: action_create_repair_ticket explains the boundary first
        if side or knowledge.business_type("repair", problem) != "leak" \
                or knowledge.boundary()["indoor"] == "repair":
            slots.remove("leak_location")
        if tracker.get_slot("account_number") and "address" in slots:
            # The account's address will do; listing the account makes it validated.
            slots[slots.index("address")] = "account_number"
        meta = metadata(tracker)
        if (meta.get("address") or meta.get("latitude") is not None) and "address" in slots:
            slots.remove("address")  # a WeChat location was sent with the message
        if meta.get("phone") and "phone" in slots:
            slots.remove("phone")
        return _stop_if_gave_up(tracker, slots)

    def validate_problem(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: DomainDict) -> dict[str, Any]:
        problem = _check_problem(value)
        result: dict[str, Any] = {"problem": problem}
        if problem and knowledge.business_type("repair", problem) == "leak" and not tracker.get_slot("leak_location"):
            result["leak_location"] = knowledge.leak_side(problem)
        return result

    def validate_leak_location(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> dict[str, Any]:
        text = str(value or "")
        side = knowledge.leak_side(text)
        if side is None and re.search(r"不知道|不清楚|说不好|不确定", text):
            side = "utility"  # unsure: the utility looks first
        if side is None:
            return unusable("leak_location", "请说一下是水表前（表井、楼道、户外）还是水表后（家里的管子、水龙头）漏水；"
                                             "说不清的话回复“不知道”，我们派人先看。", dispatcher, tracker)
        return {"leak_location": side}

    async def validate_address(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> dict[str, Any]:
        text = str(value or "").strip()
        account = find_account(text)
        if account:
            result = await _check_account(account, dispatcher, tracker, slot="address")
            if result.get("account_number"):
                await outages.mention_for_account(dispatcher, tracker, result["account_number"])
            return {"address": None, **result}
        latest = str((tracker.latest_message or {}).get("text") or "").strip()
        if text and text in latest and looks_like_address(latest):
            text = latest  # the whole answer, not only the part the entity extractor marked
        if not looks_like_address(text):
            more = more_of_the_problem("address", text, dispatcher, tracker)
            if more is not None:
                return more
            return unusable("address", "请告诉我故障的详细地址（小区、楼号、单元、门牌号），或者您的10位户号；"
                                       "不报修了可以回复“取消”。", dispatcher, tracker)
        await outages.mention_for_address(dispatcher, tracker, text)
        return {"address": text}

    async def validate_account_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: DomainDict) -> dict[str, Any]:
        result = await _check_account(value, dispatcher, tracker)
        if result.get("account_number"):
            await outages.mention_for_account(dispatcher, tracker, result["account_number"])
        # "我的户号是…" answered to the address question also landed in `address`.
        if find_account(str(tracker.get_slot("address") or "")):
            result["address"] = None
        return result

    def validate_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: DomainDict) -> dict[str, Any]:
        return _check_phone(value, dispatcher, tracker)


class ValidateComplaintForm(FormValidationAction):
    def name(self) -> str:
        return "validate_complaint_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        slots = list(domain_slots)
        if metadata(tracker).get("phone"):
            slots.remove("phone")
        return _stop_if_gave_up(tracker, slots)

    def validate_problem(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: DomainDict) -> dict[str, Any]:
        return {"problem": _check_problem(value)}

    def validate_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: DomainDict) -> dict[str, Any]:
        return _check_phone(value, dispatcher, tracker)


def is_general_billing(text: str) -> bool:
    """A billing question the FAQ answers for everyone (price, ways to pay, invoices, late fees)."""
    return bool(knowledge.faq_topic(text, knowledge.BILLING_TOPICS)) and not GENERAL_BILLING.search(text)


class ValidateBillingForm(FormValidationAction):
    def name(self) -> str:
        return "validate_billing_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        latest = tracker.latest_message or {}
        if not tracker.get_slot("account_number") and (latest.get("intent") or {}).get("name") == "billing" \
                and is_general_billing(latest.get("text") or ""):
            return []  # answered from the FAQ, no account needed
        if not tracker.get_slot("account_number") and channel(tracker) == "wechat":
            from actions.binding import bound_accounts  # binding builds on this module's checks
            if await bound_accounts(tracker):
                return []  # a bound WeChat user is not asked for the number
        return _stop_if_gave_up(tracker, list(domain_slots))

    async def validate_account_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: DomainDict) -> dict[str, Any]:
        return await _check_account(value, dispatcher, tracker)


class ValidateStatusForm(FormValidationAction):
    def name(self) -> str:
        return "validate_status_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        if tracker.get_slot("account_number") or metadata(tracker).get("phone"):
            return []
        return _stop_if_gave_up(tracker, list(domain_slots))

    async def validate_ticket_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     domain: DomainDict) -> dict[str, Any]:
        text = str(value or "")
        match = TICKET_RE.search(text)
        if match:
            return {"ticket_number": match.group(0).upper()}
        account = find_account(text)
        if account:
            return {"ticket_number": None, **await _check_account(account, dispatcher, tracker, "ticket_number")}
        return unusable("ticket_number", "工单号的格式是 GD 加8位日期和编号，例如 GD20261126-0007。", dispatcher, tracker)
