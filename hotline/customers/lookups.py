"""How many different accounts an unverified resident may ask about: account numbers are sequential, so
without a limit anyone could walk through them.

Counted per resident (web-chat client, WeChat user, calling number) and, for the web chat, per network
address too, over the last hour, in the store so that every service process counts alike. Asking again
about an account already asked about costs nothing; a refused look-up is not recorded.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.auth.throttle import address_key
from hotline.config import PrivacyConfig
from hotline.customers.verification import WINDOW, Resident
from models import AccountLookup


def origin_of(address: str, key: str = "") -> str:
    """A network address as a keyed digest: enough to count look-ups from one place (an IPv6 address counts
    as its /64), not to read the address back from the store."""
    secret = (key or "hotline-origin").encode()
    return hmac.new(secret, address_key(address).encode(), hashlib.sha256).hexdigest()[:32]


async def _asked(session: AsyncSession, since: dt.datetime, *where: object) -> set[str]:
    return set((await session.execute(select(AccountLookup.account_number).distinct().where(
        AccountLookup.at > since, *where))).scalars())  # type: ignore[arg-type]


async def admit(session: AsyncSession, limits: PrivacyConfig, resident: Resident, account_number: str,
                now: dt.datetime) -> bool:
    """Record a look-up of `account_number`; False (nothing recorded) when the resident or their address
    has asked about as many other accounts within the hour as allowed."""
    since = now - WINDOW
    groups = [(await _asked(session, since, AccountLookup.channel == resident.channel,
                            AccountLookup.resident == resident.key[:128]), limits.lookup_accounts_per_hour)]
    if resident.origin:
        groups.append((await _asked(session, since, AccountLookup.origin == resident.origin),
                       limits.lookup_accounts_per_address_per_hour))
    missing = [(asked, limit) for asked, limit in groups if account_number not in asked]
    if not missing:
        return True
    if any(len(asked) >= limit for asked, limit in missing):
        return False
    session.add(AccountLookup(account_number=account_number[:32], channel=resident.channel,
                              resident=resident.key[:128], origin=resident.origin, at=now))
    return True
