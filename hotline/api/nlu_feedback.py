"""Agents mark the bot's category as wrong and give the right one; stored for the next training round.

`run_hotline.py export-nlu` writes the stored corrections as Rasa NLU YAML for review
(they never go into bot/data/ unreviewed).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.api.registry import AGENTS, ApiError, actor_of, ctx_of, json_response, parse_body, path_id, route
from models import Conversation, Message
from models.nlu_feedback import NluFeedback

Intent = Literal["repair", "complaint", "inquiry", "billing", "handoff"]


class Correction(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    correct_intent: Intent
    message_id: int | None = Field(default=None, description="the resident's message; default: their last text")
    text: str | None = Field(default=None, min_length=1, max_length=2000,
                             description="the words to learn from, when not a whole message")


def feedback_json(row: NluFeedback) -> dict[str, object]:
    return {"id": row.id, "conversation_id": row.conversation_id, "message_id": row.message_id,
            "text": row.text, "bot_intent": row.bot_intent, "correct_intent": row.correct_intent,
            "created_at": row.created_at.isoformat()}


async def _resident_message(session: AsyncSession, conv_id: int, message_id: int | None) -> Message | None:
    stmt = select(Message).where(Message.conversation_id == conv_id, Message.direction == "in",
                                 Message.kind == "text")
    if message_id is not None:
        return (await session.execute(stmt.where(Message.id == message_id))).scalar_one_or_none()
    return (await session.execute(stmt.order_by(Message.id.desc()).limit(1))).scalar_one_or_none()


@route("POST", "/api/conversations/{id}/nlu_feedback",
       "Mark the bot's category of a resident's message as wrong and give the right one (kept for training)",
       tag="conversations", roles=AGENTS, body=Correction, status=201, errors=(401, 403, 404, 422))
async def add_feedback(request: web.Request) -> web.Response:
    ctx, actor = ctx_of(request), actor_of(request)
    body = await parse_body(request, Correction)
    conv_id = path_id(request, "conversation")
    async with ctx.sessions.begin() as session:
        conv = await session.get(Conversation, conv_id)
        if conv is None:
            raise ApiError(404, "not_found", "no such conversation")
        message = await _resident_message(session, conv_id, body.message_id)
        if message is None and (body.message_id is not None or not body.text):
            raise ApiError(404, "not_found", "no such message of the resident in this conversation")
        row = NluFeedback(conversation_id=conv_id, message_id=message.id if message else None,
                          text=(body.text or (message.text if message else "")).strip(),
                          bot_intent=conv.bot_intent, correct_intent=body.correct_intent,
                          staff_id=actor.id if actor.is_staff else None, created_at=ctx.clock())
        session.add(row)
        await session.flush()
        data = feedback_json(row)
    return json_response(data, status=201)


def nlu_yaml(rows: Iterable[NluFeedback]) -> str:
    """Rasa NLU YAML of the corrections, one block per intent, each text once, for review."""
    by_intent: dict[str, list[str]] = {}
    for row in rows:
        text = " ".join(row.text.split())
        if text and text not in by_intent.setdefault(row.correct_intent, []):
            by_intent[row.correct_intent].append(text)
    lines = ['version: "3.1"',
             "# Resident messages the bot put into the wrong category, with the category an agent gave.",
             "# Review each line before it goes into bot/data/ (and keep it out of bot/tests/nlu_eval.yml).",
             "nlu:"]
    for intent in sorted(by_intent):
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in by_intent[intent]]
    return "\n".join(lines) + "\n"


async def export_rows(session: AsyncSession, since: dt.datetime | None = None) -> list[NluFeedback]:
    stmt = select(NluFeedback).order_by(NluFeedback.id)
    if since is not None:
        stmt = stmt.where(NluFeedback.created_at >= since)
    return list((await session.execute(stmt)).scalars())
