"""Whose data a record is, for the read audit: a ticket, a call or a conversation names its resident by
account when it has one, else by the phone or WeChat user it came from."""
from __future__ import annotations

from hotline.audit.reads import Subject
from models import Call, Conversation, Ticket


def of_ticket(t: Ticket) -> Subject:
    return Subject(account_number=t.account_number, phone=None if t.account_number else t.contact_phone)


def of_call(c: Call, *, with_id: bool = False) -> Subject:
    """Inbound, the resident is the caller; outbound (a callback, an outage notice), the callee."""
    phone = c.callee if c.direction == "outbound" else c.caller
    return Subject(account_number=c.account_number, phone=None if c.account_number else phone,
                   call_id=c.id if with_id else None)


def of_conversation(c: Conversation, account: str | None, *, with_id: bool = False) -> Subject:
    """By its account when the bot confirmed one; else by the caller or the WeChat user; a web chat
    visitor (a browser's random id) only by the conversation itself."""
    conversation_id = c.id if with_id or (account is None and c.channel not in ("phone", "wechat")) else None
    return Subject(account_number=account,
                   phone=c.external_user if c.channel == "phone" else None,
                   openid=c.external_user if c.channel == "wechat" else None,
                   conversation_id=conversation_id)
