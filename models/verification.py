"""Who has proven to own an account (已核实), the proofs tried, and the accounts unverified residents asked about.

A resident is named by channel and the channel's own id for them (web client id, WeChat openid,
calling number); a web-chat resident's network address is kept only as a keyed digest (`origin`), enough
to count look-ups from one address and useless for reading it back.
"""
from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class ResidentVerification(Base):
    """A conversation whose resident proved to own an account: the full statement and tickets for the
    rest of that conversation (a bound WeChat user needs no row: the binding is the proof)."""

    __tablename__ = "resident_verifications"
    __table_args__ = (UniqueConstraint("conversation_id", "customer_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(20))  # phone_digits, holder_name
    verified_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class ProofAttempt(Base):
    """One proof given for an account, right or wrong: the limits count the wrong ones per account (whoever
    tried) and per resident."""

    __tablename__ = "proof_attempts"
    __table_args__ = (Index("ix_proof_attempts_account_at", "account_number", "at"),
                      Index("ix_proof_attempts_resident_at", "channel", "resident", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(10))
    resident: Mapped[str] = mapped_column(String(128))
    succeeded: Mapped[bool]
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)  # for retention's purge


class AccountLookup(Base):
    """An account an unverified resident asked about: the throttle counts different accounts per resident
    and per origin (a web chat's address) within the hour."""

    __tablename__ = "account_lookups"
    __table_args__ = (Index("ix_account_lookups_resident_at", "channel", "resident", "at"),
                      Index("ix_account_lookups_origin_at", "origin", "at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    account_number: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(10))
    resident: Mapped[str] = mapped_column(String(128))
    origin: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)  # for retention's purge
