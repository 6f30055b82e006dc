"""What an agent types into a search box, turned into conditions: a 户号, a phone number, a ticket
number, or words (a name, an address, something the resident said).

Account and phone lookups walk indexes (customers.account_number, customer_phones.phone,
tickets (account_number, id) and (contact_phone, id), conversations (customer_id, id)); only words
scan, newest first with a limit, as the ticket list's text filter does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, and_, cast, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.api.context import as_phone
from models import Conversation, Customer, CustomerPhone, Message, Ticket

TICKET_NUMBER = re.compile(r"^[A-Za-z]{2}\d{8}-\d{3,6}$")


@dataclass
class Needle:
    """One search text, read once: what it could be. A number can be several things at once: a 10-digit
    户号 also reads as a telephone number, so `phone` being set never means the text is not an account;
    the accounts it names are in `customer_ids`, found both ways."""

    text: str
    phone: str | None  # the text as a telephone number (a 户号 may read as one too)
    digits: bool  # all digits: a 户号, a phone, or neither
    ticket_number: str | None
    customer_ids: list[int]  # accounts it names: by 户号 or by one of their phones
    accounts: list[str]  # their 户号: a phone finds the tickets filed under its account too
    phones: list[str]  # the text as a phone, and the accounts' phones: a 户号 finds tickets filed by phone


async def read_needle(session: AsyncSession, text: str) -> Needle:
    text = text.strip()
    phone = as_phone(text)
    ticket_number = text.upper() if TICKET_NUMBER.match(text) else None
    found: dict[int, str] = {}
    if text.isdigit():
        found.update({i: a for i, a in (await session.execute(select(Customer.id, Customer.account_number).where(
            Customer.account_number == text))).all()})
    if phone:
        found.update({i: a for i, a in (await session.execute(select(Customer.id, Customer.account_number)
                                                              .join(CustomerPhone).where(CustomerPhone.phone == phone))
                                         ).all()})
    phones = set((await session.execute(select(CustomerPhone.phone).where(
        CustomerPhone.customer_id.in_(found)))).scalars()) if found else set()
    return Needle(text, phone, text.isdigit(), ticket_number, sorted(found), sorted(set(found.values())),
                  sorted(phones | ({phone} if phone else set())))


def ticket_conditions(needle: Needle, words: bool = True) -> list[Any]:
    """A ticket matches by number, 户号, phone, or (with `words`) words in its address, contact or description.

    Each returned condition is meant for its own newest-first query: OR-ed together with ORDER BY id DESC
    LIMIT, SQLite walks the whole id index instead of the (account_number, id) and (contact_phone, id) ones.
    The words come as one condition (they scan anyway)."""
    conds: list[Any] = [Ticket.number == (needle.ticket_number or needle.text)]
    accounts = sorted(set(needle.accounts) | ({needle.text} if needle.digits else set()))
    conds += [Ticket.account_number == a for a in accounts]
    conds += [Ticket.contact_phone == p for p in needle.phones]
    if words and not needle.digits and not needle.ticket_number:
        conds.append(or_(Ticket.address.contains(needle.text, autoescape=True),
                         Ticket.contact_name.contains(needle.text, autoescape=True),
                         Ticket.description.contains(needle.text, autoescape=True)))
    return conds


def conversation_conditions(needle: Needle, words: bool = True) -> list[Any]:
    """A conversation matches by its account (confirmed by the bot), by a ticket it has for that account or
    phone, by a phone call's number, by what the bot learned, or (with `words`) by what was said in it."""
    conds: list[Any] = []
    if needle.customer_ids:
        conds.append(Conversation.customer_id.in_(needle.customer_ids))
    accounts = sorted(set(needle.accounts) | ({needle.text} if needle.digits else set()))
    ticket_match: list[Any] = [Ticket.account_number.in_(accounts)] if accounts else []
    if needle.phones:
        ticket_match.append(Ticket.contact_phone.in_(needle.phones))
        conds.append(and_(Conversation.channel == "phone", Conversation.external_user.in_(needle.phones)))
    if needle.ticket_number:
        ticket_match.append(Ticket.number == needle.ticket_number)
    if ticket_match:
        conds.append(Conversation.id.in_(select(Ticket.conversation_id).where(
            or_(*ticket_match), Ticket.conversation_id.is_not(None))))
    if needle.digits or needle.phone:
        # The account or phone the bot learned but could not confirm (kept in the slots as JSON).
        conds.append(cast(Conversation.slots, String).contains(needle.text, autoescape=True))
    if words:
        conds.append(Conversation.id.in_(select(Message.conversation_id).where(
            Message.text.contains(needle.text, autoescape=True))))
    return conds
