"""Proving to own an account in the conversation (已核实).

The hotline decides what a resident may see of an account they name (hotline/api/residents.py): its proven
owner gets the bills, readings and tickets; anyone else at most the masked name and the amount due. When the
answer was not the full one, the bot offers to prove it: the binding form runs in `proof:` mode (the
`pending` slot says so and what for), asks for the last four digits of the registered phone or the holder's
name, and the hotline checks them (wrong proofs are limited per resident and per account). Proven, the
resident stays verified for the rest of the conversation, on every channel; nothing is bound.
"""
from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import FollowupAction, SlotSet

TOO_MANY_LOOKUPS = "查询次数过多，请稍后再试，或拨打供水服务热线。"
TOO_MANY_PROOFS = "验证尝试次数过多，为保护账户安全，请一小时后再试；也可以回复“人工客服”由工作人员核实。"
NO_RESIDENT = "这里无法确认您的身份，暂时不能查询户号信息，请通过微信公众号或网页客服查询。"
NOT_PROVEN = "手机号后四位或户主姓名与登记信息对不上，请核对后再回复；不需要了可以回复“取消”。"
PROOF_OFFER = {
    "billing": "如需查看账单明细、用水量和读数，需要先核实您的身份。",
    "tickets": "为保护用户信息，查看这个户号的工单需要先核实您的身份。",
}
PROOF_PREFIX = "proof:"


def proving(tracker: Tracker) -> str | None:
    """What the resident is proving the account for (billing, tickets), or None outside a proof."""
    pending = str(tracker.get_slot("pending") or "")
    return pending.removeprefix(PROOF_PREFIX) if pending.startswith(PROOF_PREFIX) else None


def offer_proof(account: str, purpose: str) -> list[Any]:
    """Start the binding form in proof mode: it asks for the phone's last four digits or the holder's name."""
    return [SlotSet("account_number", account), SlotSet("binding_proof", None), SlotSet("binding_outcome", None),
            SlotSet("pending", f"{PROOF_PREFIX}{purpose}"), SlotSet("requested_slot", None),
            FollowupAction("binding_form")]
