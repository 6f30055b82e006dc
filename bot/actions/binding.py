"""Binding a WeChat user to an account (绑定户号): the account, then a proof the hotline checks (the last
four digits of the phone on file, or the holder's name; at most 5 tries an hour). Bound residents ask
for their balance without typing the number and hear of outages in their area.

Only the hotline knows who the WeChat user is: the bot names the conversation, never an openid.
The same form takes a proof given in the conversation on any channel when the bot offered one (a
statement or tickets asked for an account not yet proven; actions/verification.py).
"""
from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import hotline_api
from actions.common import api_down, channel, find_account, metadata
from actions.forms import _check_account, _stop_if_gave_up, unusable
from actions.verification import NOT_PROVEN, TOO_MANY_PROOFS, proving

FOUR_DIGITS = re.compile(r"(?<!\d)\d{4}(?!\d)")
NAMED = re.compile(r"户主|姓名|名字|叫")  # a holder's name given as such
# Requests that end an offered proof, and what answers them.
REQUESTS = {"billing": "billing_form", "ticket_status": "status_form", "repair": "action_repair_start",
            "complaint": "complaint_form", "inquiry": "action_answer_inquiry", "handoff": "action_handoff",
            "unbind_account": "action_unbind_account"}
NAME_FILLER = re.compile(r"户主|姓名|名字|的|是|叫|[，。！？,.!?：:\s]")
CHINESE_NAME = re.compile(r"[\u4e00-\u9fa5·]{2,5}")
# Characters of requests and answers, not of names: 水管爆了, 查水费, 不知道, 不绑了 are not a holder's name
# (and must not spend one of the resident's five tries).
NOT_A_NAME = re.compile(r"[了吗呢吧啊呀么嘛查绑停漏爆费谢你您我他她这那要想请问否没不修坏缴交欠钱号码户账]")
NOT_WECHAT = "绑定户号只适用于微信公众号。在这里查询水费，直接把10位户号发给我就可以。"


def proof_in(text: str) -> str | None:
    """The phone's last four digits, or a name, from what the resident wrote (尾号是1234, 户主张建国)."""
    digits = FOUR_DIGITS.search(text)
    if digits:
        return digits.group(0)
    name = NAME_FILLER.sub("", text)
    return name if CHINESE_NAME.fullmatch(name) and not NOT_A_NAME.search(name) else None


def conversation_of(tracker: Tracker) -> Any:
    return metadata(tracker).get("conversation_id")


async def bound_accounts(tracker: Tracker) -> list[dict[str, Any]]:
    """The accounts this WeChat user bound ([] on other channels, or when the hotline cannot say)."""
    if channel(tracker) != "wechat" or conversation_of(tracker) is None:
        return []
    try:
        return await hotline_api.bound_accounts(conversation_of(tracker))
    except (hotline_api.ApiUnavailable, hotline_api.NotFound, hotline_api.Rejected):
        return []


def _account_given(tracker: Tracker) -> str | None:
    for event in reversed(tracker.events):
        if event.get("event") == "slot" and event.get("name") == "account_number":
            found = find_account(str(event.get("value") or ""))
            if found:
                return found
    return None


class ValidateBindingForm(FormValidationAction):
    def name(self) -> str:
        return "validate_binding_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        intent = ((tracker.latest_message or {}).get("intent") or {}).get("name")
        if proving(tracker) and intent == "bind_account":
            # Asked to bind instead of proving for one answer: which account to bind is asked (WeChat), or
            # the form ends and says binding is WeChat's.
            wechat = channel(tracker) == "wechat"
            return [SlotSet("pending", None), SlotSet("binding_proof", None),
                    *([SlotSet("account_number", None)] if wechat else []),
                    SlotSet("requested_slot", "account_number" if wechat else None)]
        starting = tracker.get_slot("requested_slot") is None
        if proving(tracker) and not starting and intent in REQUESTS:
            return await self._request_while_proving(dispatcher, tracker, str(intent))
        latest = (tracker.latest_message or {}).get("text") or ""
        events = await super().run(dispatcher, tracker, domain)
        if starting and tracker.get_slot("account_number") and not find_account(latest) and not proving(tracker):
            # An account from an earlier question (a relative's bill) is not the one to bind: ask for it.
            kept = [e for e in events if not (e.get("event") == "slot" and e.get("name") == "account_number")]
            return [*kept, SlotSet("account_number", None)]
        return events

    async def required_slots(self, domain_slots: list[str], dispatcher: CollectingDispatcher,
                             tracker: Tracker, domain: DomainDict) -> list[str]:
        if tracker.get_slot("binding_outcome"):
            return []  # the hotline has answered
        if channel(tracker) != "wechat" and not proving(tracker):
            return []  # binding is WeChat's; a proof offered in the conversation works everywhere
        return _stop_if_gave_up(tracker, list(domain_slots))

    # account_number is validated before binding_proof (their order in the domain's form), so the proof's
    # validator sees the account as this one leaves it.
    async def validate_account_number(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                      domain: DomainDict) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") == "binding_proof" and not find_account(str(value or "")):
            # The four digits of the proof, taken for an account by the NLU: the account stays as given.
            return {"account_number": _account_given(tracker)}
        return await _check_account(value, dispatcher, tracker)

    async def validate_binding_proof(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     domain: DomainDict) -> dict[str, Any]:
        proof = proof_in(str(value or ""))
        account = tracker.get_slot("account_number")
        if proving(tracker):
            return await self._prove(dispatcher, tracker, account, proof)
        if not proof or not account:
            return unusable("binding_proof", "请回复户号登记手机号的后四位（4位数字），或者户主姓名。", dispatcher, tracker)
        try:
            await hotline_api.bind(conversation_of(tracker), account, proof)
        except hotline_api.TooManyTries:
            return {"binding_proof": proof, "binding_outcome": "locked"}
        except hotline_api.Rejected:
            dispatcher.utter_message(text="户号和验证信息对不上，请核对后再回复手机号后四位或户主姓名"
                                          "（每小时最多可试5次）；不绑了可以回复“取消”。")
            return {"binding_proof": None}
        except (hotline_api.ApiUnavailable, hotline_api.NotFound):
            return {"binding_proof": proof, "binding_outcome": "unavailable"}
        return {"binding_proof": proof, "binding_outcome": "bound"}

    async def _request_while_proving(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                     intent: str) -> list[Any]:
        """The offer of a proof was answered with a request: a holder's name that reads like a question
        (户主张建国) is taken as the proof; anything else ends the offer and is answered as itself."""
        proof = proof_in((tracker.latest_message or {}).get("text") or "")
        if proof and NAMED.search((tracker.latest_message or {}).get("text") or ""):
            found = await self._prove(dispatcher, tracker, tracker.get_slot("account_number"), proof)
            return [SlotSet(slot, value) for slot, value in found.items()]
        return [SlotSet("pending", None), SlotSet("binding_proof", None), SlotSet("requested_slot", None),
                FollowupAction(REQUESTS[intent])]

    @staticmethod
    async def _prove(dispatcher: CollectingDispatcher, tracker: Tracker, account: str | None,
                     proof: str | None) -> dict[str, Any]:
        if not proof or not account:
            return {"binding_proof": None, "binding_outcome": "skipped"}  # the offer was not taken up
        try:
            await hotline_api.verify_resident(conversation_of(tracker), account, proof)
        except hotline_api.TooManyTries:
            return {"binding_proof": proof, "binding_outcome": "locked"}
        except hotline_api.Rejected:
            dispatcher.utter_message(text=NOT_PROVEN)
            return {"binding_proof": None}
        except (hotline_api.ApiUnavailable, hotline_api.NotFound):
            return {"binding_proof": proof, "binding_outcome": "unavailable"}
        return {"binding_proof": proof, "binding_outcome": "verified"}


class ActionBindAccount(Action):
    """What the binding came to, once the form is done."""

    def name(self) -> str:
        return "action_bind_account"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        outcome = tracker.get_slot("binding_outcome")
        done = [SlotSet("binding_proof", None), SlotSet("binding_outcome", None)]
        if tracker.get_slot("gave_up"):
            return done + [SlotSet("gave_up", None)]
        purpose = proving(tracker)
        if purpose:
            return done + [SlotSet("pending", None)] + self._proven(dispatcher, tracker, outcome, purpose)
        if channel(tracker) != "wechat":
            dispatcher.utter_message(text=NOT_WECHAT)
        elif outcome == "bound":
            account = tracker.get_slot("account_number")
            name = ""
            try:  # bound: the hotline now tells this resident the account's (masked) name
                name = (await hotline_api.resident_statement(conversation_of(tracker), account)).get("name") or ""
            except (hotline_api.ApiUnavailable, hotline_api.NotFound, hotline_api.Rejected):
                pass
            dispatcher.utter_message(text=f"绑定成功：户号 {account}{f'（{name}）' if name else ''}已绑定到您的微信。"
                                          "以后直接说“查水费”就能查询，所在片区的停水通知也会推送给您；"
                                          "需要解除时回复“解绑户号”。")
        elif outcome == "locked":
            dispatcher.utter_message(text="绑定尝试次数过多，为保护您的账户安全，请一小时后再试；"
                                          "也可以回复“人工客服”由工作人员核实。")
        else:
            api_down(dispatcher, "inquiry", tracker)
        return done

    @staticmethod
    def _proven(dispatcher: CollectingDispatcher, tracker: Tracker, outcome: str | None, purpose: str) -> list[Any]:
        """After a proof offered in the conversation: what was asked for is answered again, now in full."""
        if outcome == "verified":
            dispatcher.utter_message(text="核实成功。")
            return [FollowupAction("action_ticket_status" if purpose == "tickets" else "action_answer_billing")]
        if outcome == "locked":
            dispatcher.utter_message(text=TOO_MANY_PROOFS)
        elif outcome == "skipped":
            dispatcher.utter_message(response="utter_anything_else")
        else:
            api_down(dispatcher, "billing" if purpose == "billing" else "inquiry", tracker)
        return []


class ActionUnbindAccount(Action):
    def name(self) -> str:
        return "action_unbind_account"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[Any]:
        if channel(tracker) != "wechat":
            dispatcher.utter_message(text="这里没有绑定户号，不需要解除。绑定户号只适用于微信公众号。")
            return []
        try:
            count = await hotline_api.unbind(conversation_of(tracker))
        except (hotline_api.ApiUnavailable, hotline_api.NotFound, hotline_api.Rejected):
            api_down(dispatcher, "inquiry", tracker)
            return []
        if count:
            dispatcher.utter_message(text="已解除绑定。之后不再向您推送停水通知，查询水费时请发送户号。")
        else:
            dispatcher.utter_message(text="您的微信还没有绑定户号。回复“绑定户号”可以绑定。")
        return [SlotSet("account_number", None)]  # the number is asked again, as just said
