"""Binding a WeChat user to an account (绑定户号): proven by the last four digits of the phone on file or
the account holder's name, every try audited. Wrong proofs are limited per WeChat user and per account
([privacy] proof_tries_per_*_per_hour), counted together with the proofs given in conversations
(hotline/customers/verification.py); a bound user is a verified resident of the account."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.actors import Actor
from hotline.config import PrivacyConfig
from hotline.customers import verification
from hotline.errors import Refused
from hotline.incidents.doors import audit
from models import Customer, WechatBinding

TOO_MANY_TRIES = "绑定尝试次数过多，请一小时后再试"


class BindingError(Refused):
    """Refused by this door; the API answers with its status (hotline/api/middleware.py)."""


def masked(name: str) -> str:
    """张* / 欧阳** : enough for the resident to recognise, not enough to read out."""
    return name[:1] + "*" * max(1, len(name) - 1) if name else ""


def _resident(openid: str) -> Actor:
    return Actor(kind="resident", name=f"微信用户 {openid[-6:]}")


async def bind(session: AsyncSession, openid: str, account_number: str, proof: str,
               now: dt.datetime, limits: PrivacyConfig | None = None) -> Customer | None:
    """The bound account, or None when the proof failed (the failed try is recorded: commit it)."""
    customer, method = await verification.prove(session, limits or PrivacyConfig(),
                                                verification.Resident("wechat", openid), account_number, proof,
                                                now, TOO_MANY_TRIES)
    if customer is None or method is None:
        audit(session, "binding", customer.id if customer else 0, "bind_failed", _resident(openid), now,
              {"openid": openid, "account_number": account_number})
        return None
    exists = (await session.execute(select(WechatBinding.id).where(
        WechatBinding.openid == openid, WechatBinding.customer_id == customer.id))).first()
    if not exists:
        session.add(WechatBinding(openid=openid, customer_id=customer.id, bound_at=now))
    audit(session, "binding", customer.id, "bind", _resident(openid), now,
          {"openid": openid, "account_number": account_number})
    return customer


async def accounts_of(session: AsyncSession, openid: str) -> list[Customer]:
    return list((await session.execute(select(Customer).join(WechatBinding, WechatBinding.customer_id == Customer.id)
                                       .where(WechatBinding.openid == openid).order_by(Customer.id))).scalars())


async def unbind(session: AsyncSession, openid: str, now: dt.datetime) -> int:
    result = await session.execute(delete(WechatBinding).where(WechatBinding.openid == openid))
    count = int(result.rowcount or 0)  # type: ignore[attr-defined]
    if count:
        audit(session, "binding", 0, "unbind", _resident(openid), now, {"openid": openid})
    return count
