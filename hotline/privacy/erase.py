"""Erasing a resident (PIPL art. 47): their contact data and what they said go; business facts stay.

What goes: their messages (text, media, the channel's ids), their conversations' ids for them and
the copies of their words (slots, events, public-opinion excerpts, NLU feedback), the bot's
trackers of those conversations, call recordings (files deleted), calling numbers and keyed digits,
WeChat bindings, the phones listed on the account, tickets' contact name, phone, address,
description, attachments and notes, callback contacts, proof attempts and look-ups under their ids,
and their phone and openid in the read audit's rows. Then a sweep removes their identifiers and
longer sentences from every text column of every table (sweep.py).

What stays, by law or because it identifies no one: the customer archive (户号, holder's name,
premises address, meter) with its bills and payments, which a utility must keep as accounting
records; tickets' business facts (category, business type, department, times, outcome, area);
call records' times, menu path and outcome; the audit trails' actions and times.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, or_, select, update

from hotline.context import AppContext
from hotline.privacy import retention, sweep, tracker
from hotline.privacy.subjects import Resident
from models import CallbackTask, Conversation, CustomerPhone, Message, WechatBinding
from models.base import Base
from models.call import OutboundJob
from models.nlu_feedback import NluFeedback


@dataclass
class Erasure:
    counts: dict[str, int] = field(default_factory=dict)
    swept: dict[str, int] = field(default_factory=dict)


async def _words(ctx: AppContext, r: Resident) -> list[str]:
    """What the resident wrote (their inbound messages and NLU feedback quoting them)."""
    async with ctx.readers() as session:
        texts = (await session.execute(select(Message.text).where(
            Message.conversation_id.in_(r.conversation_ids), Message.direction == "in"))).scalars().all()
        quoted = (await session.execute(select(NluFeedback.text).where(
            NluFeedback.conversation_id.in_(r.conversation_ids)))).scalars().all()
    return [*texts, *quoted]


def _by_resident(table_name: str) -> Any:
    """A table of H2/H1's privacy work keyed by (channel, resident), if this build has it."""
    return Base.metadata.tables.get(table_name)


async def erase(ctx: AppContext, r: Resident) -> Erasure:
    """Erase everything personal held about `r`; returns what was done, per kind of data."""
    out = Erasure()
    words = await _words(ctx, r)
    async with ctx.readers() as session:
        senders = [tracker.sender_id(ch, cid) for ch, cid in (await session.execute(
            select(Conversation.channel, Conversation.id).where(Conversation.id.in_(r.conversation_ids)))).all()]
    pctx = retention.PurgeContext(ctx.config.var_dir)
    async with ctx.sessions.begin() as session:
        c = out.counts
        c["nlu_feedback"] = (await session.execute(delete(NluFeedback).where(
            NluFeedback.conversation_id.in_(r.conversation_ids)))).rowcount or 0  # type: ignore[attr-defined]
        c["conversations"] = await retention.apply_now(session, retention.plan_conversations,
                                                       sorted(r.conversation_ids), pctx)
        await retention.apply_now(session, retention.plan_recordings, sorted(r.call_ids), pctx)
        c["recordings"] = pctx.files_removed
        c["calls"] = await retention.apply_now(session, retention.plan_calls, sorted(r.call_ids), pctx)
        c["tickets"] = await retention.apply_now(session, retention.plan_tickets, sorted(r.ticket_ids), pctx)
        await session.execute(update(CallbackTask).where(or_(
            CallbackTask.id.in_(r.callback_task_ids), CallbackTask.external_user.in_(r.resident_ids))).values(
            external_user=None, note=""))
        c["callbacks"] = len(r.callback_task_ids)
        phones = delete(CustomerPhone).where(CustomerPhone.phone.in_(r.phones))
        bindings = delete(WechatBinding).where(WechatBinding.openid.in_(r.openids))
        if r.kind == "account":
            phones = delete(CustomerPhone).where(or_(CustomerPhone.phone.in_(r.phones),
                                                     CustomerPhone.customer_id.in_(r.customer_ids)))
            bindings = delete(WechatBinding).where(or_(WechatBinding.openid.in_(r.openids),
                                                       WechatBinding.customer_id.in_(r.customer_ids)))
        c["phones"] = (await session.execute(phones)).rowcount or 0  # type: ignore[attr-defined]
        c["bindings"] = (await session.execute(bindings)).rowcount or 0  # type: ignore[attr-defined]
        c["outbound_jobs"] = (await session.execute(delete(OutboundJob).where(
            OutboundJob.phone.in_(r.phones)))).rowcount or 0  # type: ignore[attr-defined]
        for name in ("proof_attempts", "account_lookups"):
            table = _by_resident(name)
            if table is not None and "resident" in table.c:
                c[name] = (await session.execute(delete(table).where(
                    table.c.resident.in_(r.resident_ids)))).rowcount or 0  # type: ignore[attr-defined]
        verifications = _by_resident("resident_verifications")
        if verifications is not None:
            await session.execute(delete(verifications).where(
                verifications.c.conversation_id.in_(r.conversation_ids)))
        audit = _by_resident("read_audit")
        if audit is not None:
            await session.execute(update(audit).where(audit.c.phone.in_(r.phones)).values(phone=None))
            await session.execute(update(audit).where(audit.c.openid.in_(r.openids)).values(openid=None))
    out.counts["files"] = pctx.files_removed
    out.counts["tracker_events"] = await tracker.erase_senders(ctx, senders)
    out.swept = await sweep.sweep(ctx, sweep.needles_of(r.resident_ids, words))
    return out

