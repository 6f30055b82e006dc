"""Form validation: what each dialogue still needs, and whether an answer is usable."""
from __future__ import annotations

import re
from typing import Any

from rasa_sdk import FormValidationAction, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import hotline_api
from actions.common import TICKET_RE, find_account, find_phone, metadata

GENERIC = re.compile(r"我要|我想|想要|报修|报个修|投诉|一下|你好|您好|请问|麻烦|帮我|登记|维修|[，。！？,.!?\s]")


async def _check_account(value: Any, dispatcher: CollectingDispatcher) -> str | None:
    account = find_account(str(value or ""))
    if not account:
        dispatcher.utter_message(text="户号是水费单上的10位数字，请核对后再发给我。")
        return None
    try:
        await hotline_api.get_customer(account)
    except hotline_api.NotFound:
        dispatcher.utter_message(text=f"没有找到户号 {account}，请核对后重新输入。")
        return None
    except hotline_api.ApiUnavailable:
        return account  # checked again when the ticket is created
    return account


def _check_phone(value: Any, dispatcher: CollectingDispatcher) -> str | None:
    phone = find_phone(str(value or ""))
    if not phone:
        dispatcher.utter_message(text="这个号码好像不完整，请留一个11位手机号或带区号的固定电话。")
    return phone


def _check_problem(value: Any, dispatcher: CollectingDispatcher) -> str | None:
    text = str(value or "").strip()
    if len(GENERIC.sub("", text)) < 2:
        return None  # the form asks with utter_ask_*_problem
    return text


class ValidateRepairForm(FormValidationAction):
    def name(self) -> str:
        return "validate_repair_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        slots = list(domain_slots)
        if tracker.get_slot("account_number") and "address" in slots:
            # The account's address will do; listing the account makes it validated.
            slots[slots.index("address")] = "account_number"
        meta = metadata(tracker)
        if (meta.get("address") or meta.get("latitude") is not None) and "address" in slots:
            slots.remove("address")  # a WeChat location was sent with the message
        if meta.get("phone") and "phone" in slots:
            slots.remove("phone")
        return slots

    def validate_problem(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: DomainDict) -> dict[str, Any]:
        return {"problem": _check_problem(value, dispatcher)}

    async def validate_address(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                               domain: DomainDict) -> dict[str, Any]:
        text = str(value or "").strip()
        account = find_account(text)
        if account:
            return {"address": None, "account_number": await _check_account(account, dispatcher)}
        if len(text) < 4:
            dispatcher.utter_message(text="地址太简短了，请写明小区、楼号和门牌号，或者发送您的位置。")
            return {"address": None}
        return {"address": text}

    async def validate_account_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: DomainDict) -> dict[str, Any]:
        result: dict[str, Any] = {"account_number": await _check_account(value, dispatcher)}
        # "我的户号是…" answered to the address question also landed in `address`.
        if find_account(str(tracker.get_slot("address") or "")):
            result["address"] = None
        return result

    def validate_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: DomainDict) -> dict[str, Any]:
        return {"phone": _check_phone(value, dispatcher)}


class ValidateComplaintForm(FormValidationAction):
    def name(self) -> str:
        return "validate_complaint_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        if metadata(tracker).get("phone"):
            return [s for s in domain_slots if s != "phone"]
        return domain_slots

    def validate_problem(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                         domain: DomainDict) -> dict[str, Any]:
        return {"problem": _check_problem(value, dispatcher)}

    def validate_phone(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                       domain: DomainDict) -> dict[str, Any]:
        return {"phone": _check_phone(value, dispatcher)}


class ValidateBillingForm(FormValidationAction):
    def name(self) -> str:
        return "validate_billing_form"

    async def validate_account_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: DomainDict) -> dict[str, Any]:
        return {"account_number": await _check_account(value, dispatcher)}


class ValidateStatusForm(FormValidationAction):
    def name(self) -> str:
        return "validate_status_form"

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        if tracker.get_slot("account_number") or metadata(tracker).get("phone"):
            return []
        return domain_slots

    async def validate_ticket_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     domain: DomainDict) -> dict[str, Any]:
        text = str(value or "")
        match = TICKET_RE.search(text)
        if match:
            return {"ticket_number": match.group(0).upper()}
        account = find_account(text)
        if account:
            return {"ticket_number": None, "account_number": await _check_account(account, dispatcher)}
        dispatcher.utter_message(text="工单号的格式是 GD 加8位日期和编号，例如 GD20261126-0007。")
        return {"ticket_number": None}
