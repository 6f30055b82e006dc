"""Console sessions: a random token in an HttpOnly cookie, its hash in the store."""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotline.actors import Actor
from hotline.auth.passwords import DUMMY_HASH, hash_password, needs_rehash, verify_password
from models import Staff, StaffSession

COOKIE = "hotline_session"


class LoginError(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class SignedIn:
    token: str
    csrf_token: str
    staff: Staff


def _hash(token: str) -> str:
    # Any cookie text hashes (non-ASCII too): it then simply matches no session.
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def actor_for(staff: Staff) -> Actor:
    return Actor(kind="staff", name=staff.display_name, id=staff.id, role=staff.role,
                 department_id=staff.department_id)


async def sign_in(writers: async_sessionmaker[AsyncSession], readers: async_sessionmaker[AsyncSession],
                  username: str, password: str, now: dt.datetime, lifetime: dt.timedelta) -> SignedIn:
    """Check the password: the same work, answer and writes (none) whether or not the name exists.

    Repeated failures are throttled by the caller per name and address
    (hotline.auth.throttle), never by locking the account, so nobody can lock a
    staff member out and a lock-out says nothing about which names exist.
    The KDF (half a second) runs outside any transaction: on SQLite a writer holds
    the database's one write lock from its first statement. Then one short write: a
    right password stored with older scrypt parameters is stored hashed with today's,
    every expired session (of anyone) is deleted, since sign-in is when sessions are
    made, and the new session is added.
    """
    async with readers() as session:
        staff = (await session.execute(select(Staff).where(Staff.username == username))).scalar_one_or_none()
    if staff is None or not staff.active:
        await verify_password(password, DUMMY_HASH)
        raise LoginError("用户名或密码错误", "bad_credentials")
    if not await verify_password(password, staff.password_hash):
        raise LoginError("用户名或密码错误", "bad_credentials")
    new_hash = await hash_password(password) if needs_rehash(staff.password_hash) else None
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    async with writers.begin() as session:
        if new_hash is not None:  # unless the password was changed meanwhile
            await session.execute(update(Staff).where(Staff.id == staff.id,
                                                      Staff.password_hash == staff.password_hash)
                                  .values(password_hash=new_hash))
        await purge_expired(session, now)
        session.add(StaffSession(token_hash=_hash(token), staff_id=staff.id, csrf_token=csrf,
                                 created_at=now, expires_at=now + lifetime))
    return SignedIn(token=token, csrf_token=csrf, staff=staff)


async def resolve(session: AsyncSession, token: str, now: dt.datetime) -> tuple[Staff, StaffSession] | None:
    row = (await session.execute(
        select(Staff, StaffSession).join(StaffSession, StaffSession.staff_id == Staff.id)
        .where(StaffSession.token_hash == _hash(token)))).first()
    if row is None:
        return None
    staff, sess = row
    if sess.expires_at <= now or not staff.active:
        return None
    return staff, sess


async def sign_out(session: AsyncSession, token: str) -> None:
    await session.execute(delete(StaffSession).where(StaffSession.token_hash == _hash(token)))


async def purge_expired(session: AsyncSession, now: dt.datetime) -> int:
    """Delete every expired session; returns how many went."""
    result = await session.execute(delete(StaffSession).where(StaffSession.expires_at <= now))
    return int(getattr(result, "rowcount", 0) or 0)


async def set_password(session: AsyncSession, staff: Staff, password_hash: str) -> None:
    await session.execute(update(Staff).where(Staff.id == staff.id).values(password_hash=password_hash))
    await session.execute(delete(StaffSession).where(StaffSession.staff_id == staff.id))
