"""Who may read an account's statement and tickets: a resident proven to own it (已核实).

A resident is proven by a WeChat binding, by a calling number registered to the account, or in the
conversation (or call) by the last four digits of a registered phone or the holder's name. Wrong proofs
are limited per resident and per account ([privacy] proof_tries_per_*_per_hour): neither one resident
trying many accounts nor many residents trying one account get far. Every proof, right or wrong, is
recorded (ProofAttempt); a proof given in a conversation holds for that conversation (ResidentVerification).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.config import PrivacyConfig
from hotline.errors import Refused
from models import Customer, CustomerPhone, ProofAttempt, ResidentVerification, WechatBinding

WINDOW = dt.timedelta(hours=1)
PHONE_DIGITS, HOLDER_NAME, BINDING, CALLER_NUMBER = "phone_digits", "holder_name", "binding", "caller_number"


@dataclass(frozen=True)
class Resident:
    """Who is asking, as the hotline knows them (never as the bot says)."""

    channel: str  # web, wechat, phone
    key: str  # the web client id, the WeChat openid, the calling number
    conversation_id: int | None = None
    origin: str | None = None  # a web chat's network address, as a digest (hotline/customers/lookups.py)


class TooManyProofs(Refused):
    def __init__(self, message: str) -> None:
        super().__init__(429, "too_many_tries", message)


async def phones_of(session: AsyncSession, customer: Customer) -> list[str]:
    return list((await session.execute(select(CustomerPhone.phone).where(
        CustomerPhone.customer_id == customer.id))).scalars())


def proof_method(proof: str, name: str, phones: list[str]) -> str | None:
    """What the proof shows (the phone's last four digits, the holder's name), or None when it shows nothing."""
    proof = proof.strip()
    if len(proof) == 4 and proof.isdigit() and any(p.endswith(proof) for p in phones):
        return PHONE_DIGITS
    if len(proof) >= 2 and proof == name:
        return HOLDER_NAME
    return None


async def _failures(session: AsyncSession, since: dt.datetime, *where: object) -> int:
    return int((await session.execute(select(func.count()).select_from(ProofAttempt).where(
        ProofAttempt.succeeded.is_(False), ProofAttempt.at > since, *where))).scalar_one())  # type: ignore[arg-type]


async def check_tries(session: AsyncSession, limits: PrivacyConfig, resident: Resident, account_number: str,
                      now: dt.datetime, refusal: str) -> None:
    """Refuse (429) a proof when this resident, or anyone for this account, failed too often within the hour."""
    since = now - WINDOW
    mine = await _failures(session, since, ProofAttempt.channel == resident.channel,
                           ProofAttempt.resident == resident.key)
    if mine >= limits.proof_tries_per_resident_per_hour:
        raise TooManyProofs(refusal)
    theirs = await _failures(session, since, ProofAttempt.account_number == account_number)
    if theirs >= limits.proof_tries_per_account_per_hour:
        raise TooManyProofs(refusal)


async def prove(session: AsyncSession, limits: PrivacyConfig, resident: Resident, account_number: str,
                proof: str, now: dt.datetime, refusal: str) -> tuple[Customer | None, str | None]:
    """The account and what proved it, or (the account or None, None) when the proof failed.

    The try is recorded either way (commit it); over a limit nothing is checked or recorded (429).
    """
    await check_tries(session, limits, resident, account_number, now, refusal)
    customer = (await session.execute(select(Customer).where(
        Customer.account_number == account_number))).scalar_one_or_none()
    method = proof_method(proof, customer.name, await phones_of(session, customer)) if customer else None
    session.add(ProofAttempt(account_number=account_number[:32], channel=resident.channel,
                             resident=resident.key[:128], succeeded=method is not None, at=now))
    return customer, method


async def remember(session: AsyncSession, resident: Resident, customer: Customer, method: str,
                   now: dt.datetime) -> None:
    """The resident stays verified for this account for the rest of the conversation."""
    if resident.conversation_id is None:
        return
    exists = (await session.execute(select(ResidentVerification.id).where(
        ResidentVerification.conversation_id == resident.conversation_id,
        ResidentVerification.customer_id == customer.id))).first()
    if not exists:
        session.add(ResidentVerification(conversation_id=resident.conversation_id, customer_id=customer.id,
                                         method=method, verified_at=now))


async def verified_by(session: AsyncSession, resident: Resident, customer: Customer) -> str | None:
    """How this resident is known to own the account (binding, caller_number, a proof in this conversation),
    or None."""
    if resident.channel == "wechat":
        bound = (await session.execute(select(WechatBinding.id).where(
            WechatBinding.openid == resident.key, WechatBinding.customer_id == customer.id))).first()
        if bound:
            return BINDING
    if resident.channel == "phone" and resident.key and resident.key in await phones_of(session, customer):
        return CALLER_NUMBER
    if resident.conversation_id is not None:
        method = (await session.execute(select(ResidentVerification.method).where(
            ResidentVerification.conversation_id == resident.conversation_id,
            ResidentVerification.customer_id == customer.id))).scalar_one_or_none()
        if method:
            return method
    return None
