"""Agent operations on conversations: take over, reply, hand back to the bot, close."""
from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from hotline.api.registry import AGENTS, ApiError, actor_of, ctx_of, json_response, parse_body, path_id, route
from hotline.conversations import service


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    text: str = Field(min_length=1, max_length=2000)


def _id(request: web.Request) -> int:
    return path_id(request, "conversation")


async def _run(coro) -> web.Response:
    await coro  # a refusal (ConversationError) is answered by the errors middleware
    return json_response({"ok": True})


@route("POST", "/api/conversations/{id}/take_over", "Take a waiting conversation (exactly one agent wins)",
       tag="conversations", roles=AGENTS, errors=(401, 403, 404, 409))
async def take_over(request: web.Request) -> web.Response:
    return await _run(service.take_over(ctx_of(request), _id(request), actor_of(request)))


@route("POST", "/api/conversations/{id}/reply", "Reply to the resident on their channel", tag="conversations",
       roles=AGENTS, body=Reply, errors=(401, 403, 404, 409, 422))
async def reply(request: web.Request) -> web.Response:
    body = await parse_body(request, Reply)
    msg = await service.agent_reply(ctx_of(request), _id(request), actor_of(request), body.text)
    if msg is None:
        raise ApiError(409, "not_yours", "the conversation is no longer yours")
    return json_response({"id": msg.id, "delivery_status": msg.delivery_status, "delivery_error": msg.delivery_error})


@route("POST", "/api/conversations/{id}/hand_back", "Hand the conversation back to the bot", tag="conversations",
       roles=AGENTS, errors=(401, 403, 404, 409))
async def hand_back(request: web.Request) -> web.Response:
    return await _run(service.hand_back(ctx_of(request), _id(request), actor_of(request)))


@route("POST", "/api/conversations/{id}/close",
       "Close; the resident is asked for a rating. Only the serving agent, a supervisor or an admin may (403 "
       "not_serving otherwise); an agent whose conversation a supervisor closes gets a notice",
       tag="conversations", roles=AGENTS, errors=(401, 403, 404, 409))
async def close(request: web.Request) -> web.Response:
    return await _run(service.close(ctx_of(request), _id(request), actor_of(request)))
