"""Whose data a request is about: from an account number, a phone or a WeChat openid to every row held.

The search widens once, the way the records link: an account brings its phones, its bound WeChat
users, its conversations and tickets; a phone brings the calls from it and the tickets it is the
contact of; an openid brings its conversations. Then the conversations found bring their tickets,
the tickets their conversations and contact phones, and web-chat conversations the other
conversations of the same browser. A phone does not bring the other phones or WeChat users of an
account it is listed on (a family's shared account names several people).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from models import Call, CallbackTask, Conversation, Customer, CustomerPhone, Ticket, WechatBinding

SUBJECT_KINDS = ("account", "phone", "openid")
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")


def normalise(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "phone":
        value = _PHONE_SEPARATORS.sub("", value)
    if not value or len(value) > 128:
        raise ValueError(f"a {kind} is needed (at most 128 characters)")
    return value


@dataclass
class Resident:
    """One resident as the store knows them: identifiers and the ids of every row about them."""

    kind: str
    value: str
    customer_ids: set[int] = field(default_factory=set)
    accounts: set[str] = field(default_factory=set)
    phones: set[str] = field(default_factory=set)
    openids: set[str] = field(default_factory=set)
    web_clients: set[str] = field(default_factory=set)
    conversation_ids: set[int] = field(default_factory=set)
    ticket_ids: set[int] = field(default_factory=set)
    call_ids: set[int] = field(default_factory=set)
    callback_task_ids: set[int] = field(default_factory=set)

    @property
    def found(self) -> bool:
        return bool(self.customer_ids or self.conversation_ids or self.ticket_ids or self.call_ids
                    or self.phones - {self.value} or self.openids - {self.value})

    @property
    def resident_ids(self) -> set[str]:
        """How channels name this resident: phones (calls), openids (WeChat), web-chat client ids."""
        return self.phones | self.openids | self.web_clients


async def _ids(session: AsyncSession, stmt: Any) -> set[Any]:
    return set((await session.execute(stmt)).scalars().all())


async def find(session: AsyncSession, kind: str, value: str) -> Resident:
    if kind not in SUBJECT_KINDS:
        raise ValueError(f"expected one of {', '.join(SUBJECT_KINDS)}")
    value = normalise(kind, value)
    r = Resident(kind, value)
    if kind == "account":
        r.accounts = {value}
        r.customer_ids = await _ids(session, select(Customer.id).where(Customer.account_number == value))
        r.phones = await _ids(session, select(CustomerPhone.phone).where(CustomerPhone.customer_id.in_(r.customer_ids)))
        r.openids = await _ids(session, select(WechatBinding.openid).where(
            WechatBinding.customer_id.in_(r.customer_ids)))
        r.conversation_ids = await _ids(session, select(Conversation.id).where(
            Conversation.customer_id.in_(r.customer_ids)))
    elif kind == "phone":
        r.phones = {value}
        r.customer_ids = await _ids(session, select(CustomerPhone.customer_id).where(CustomerPhone.phone == value))
        r.accounts = await _ids(session, select(Customer.account_number).where(Customer.id.in_(r.customer_ids)))
    else:
        r.openids = {value}
        r.customer_ids = await _ids(session, select(WechatBinding.customer_id).where(WechatBinding.openid == value))
        r.accounts = await _ids(session, select(Customer.account_number).where(Customer.id.in_(r.customer_ids)))

    by_account = kind == "account"
    ticket_match = [Ticket.contact_phone.in_(r.phones)]
    if by_account:
        ticket_match += [Ticket.account_number.in_(r.accounts), Ticket.customer_id.in_(r.customer_ids)]
    r.conversation_ids |= await _ids(session, select(Conversation.id).where(
        Conversation.channel == "wechat", Conversation.external_user.in_(r.openids)))
    r.ticket_ids = await _ids(session, select(Ticket.id).where(or_(
        *ticket_match, Ticket.conversation_id.in_(r.conversation_ids))))
    r.conversation_ids |= await _ids(session, select(Ticket.conversation_id).where(
        Ticket.id.in_(r.ticket_ids), Ticket.conversation_id.is_not(None)))
    r.web_clients = await _ids(session, select(Conversation.external_user).where(
        Conversation.id.in_(r.conversation_ids), Conversation.channel != "wechat", Conversation.external_user != ""))
    r.conversation_ids |= await _ids(session, select(Conversation.id).where(
        Conversation.channel != "wechat", Conversation.external_user.in_(r.web_clients)))
    r.ticket_ids |= await _ids(session, select(Ticket.id).where(Ticket.conversation_id.in_(r.conversation_ids)))
    if by_account:
        r.phones |= {p for p in await _ids(session, select(Ticket.contact_phone).where(
            Ticket.id.in_(r.ticket_ids), Ticket.contact_phone.is_not(None))) if p}
    call_match = [Call.caller.in_(r.phones), Call.ticket_id.in_(r.ticket_ids)]
    if by_account:
        call_match.append(Call.account_number.in_(r.accounts))
    r.call_ids = await _ids(session, select(Call.id).where(or_(*call_match)))
    if by_account:
        r.phones |= {p for p in await _ids(session, select(Call.caller).where(
            Call.id.in_(r.call_ids), Call.direction == "inbound")) if p}
    r.callback_task_ids = await _ids(session, select(CallbackTask.id).where(or_(
        CallbackTask.ticket_id.in_(r.ticket_ids), CallbackTask.external_user.in_(r.openids | r.web_clients))))
    return r
