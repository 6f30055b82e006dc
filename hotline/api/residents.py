"""The residents' door for the bot: an account's statement and tickets as the conversation's resident may see
them, and proofs of owning an account given in the conversation.

The bot names only the conversation; who the resident is (channel, web-chat client and address, WeChat
user) and whether they are verified for the account is the hotline's to know. Staff read accounts through
/api/customers; the service token reads residents' accounts only here.
"""
from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from hotline.api.registry import ApiError, ctx_of, json_response, parse_body, parse_query, route
from hotline.customers import disclosure, verification
from hotline.customers.verification import Resident
from hotline.incidents.bindings import masked
from models import Conversation

SERVICE = frozenset({"service"})


class AccountQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    conversation_id: int = Field(ge=1, description="the conversation the resident asks in")
    account_number: str = Field(min_length=1, max_length=32)


class ProofIn(AccountQuery):
    proof: str = Field(min_length=1, max_length=50, description="the last four digits of a phone registered to "
                                                                   "the account, or the holder's name")


async def resident_of(session: AsyncSession, conversation_id: int) -> Resident:
    conv = await session.get(Conversation, conversation_id)
    if conv is None:
        raise ApiError(404, "not_found", "no such conversation")
    origin = conv.slots.get("origin") if isinstance(conv.slots, dict) else None
    return Resident(channel=conv.channel, key=conv.external_user, conversation_id=conv.id,
                    origin=origin if isinstance(origin, str) else None)


@route("GET", "/api/residents/statement", "An account's statement as the conversation's resident may see it: in "
       "full when verified, else at most the masked name and the amount due; unverified look-ups of different "
       "accounts are limited per resident and address", tag="residents", query=AccountQuery, roles=SERVICE,
       errors=(401, 403, 404, 422, 429))
async def statement(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, AccountQuery)
    async with ctx.sessions.begin() as session:
        resident = await resident_of(session, query.conversation_id)
        found = await disclosure.disclose(ctx, session, resident, query.account_number)
    if found is None:
        raise disclosure.UnknownAccount(query.account_number)
    return json_response(disclosure.disclosure_json(found))


@route("GET", "/api/residents/tickets", "An account's latest tickets, for a verified resident only",
       tag="residents", query=AccountQuery, roles=SERVICE, errors=(401, 403, 404, 422, 429))
async def tickets(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    query = parse_query(request, AccountQuery)
    async with ctx.sessions.begin() as session:
        resident = await resident_of(session, query.conversation_id)
        found = await disclosure.disclose(ctx, session, resident, query.account_number)
        items = await disclosure.tickets_json(ctx, session, found.customer) \
            if found is not None and found.level == disclosure.FULL else None
    if found is None:
        raise disclosure.UnknownAccount(query.account_number)
    if items is None:
        raise ApiError(403, "needs_proof", "verify the resident first")
    return json_response({"items": items})


@route("POST", "/api/residents/verify", "A proof that the conversation's resident owns an account (the last four "
       "digits of a registered phone, or the holder's name); wrong proofs are limited per resident and per account",
       tag="residents", body=ProofIn, roles=SERVICE, errors=(400, 401, 403, 404, 422, 429))
async def verify(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    body = await parse_body(request, ProofIn)
    refusal = ctx.messages("residents.too_many_proofs")
    async with ctx.sessions.begin() as session:
        resident = await resident_of(session, body.conversation_id)
        try:
            customer, method = await verification.prove(session, ctx.config.privacy, resident, body.account_number,
                                                        body.proof, ctx.clock(), refusal)
        except verification.TooManyProofs:
            disclosure.refused(ctx, resident.channel, "proofs")
            raise
        if customer is not None and method is not None:
            await verification.remember(session, resident, customer, method, ctx.clock())
    if customer is None or method is None:
        raise ApiError(422, "not_proven", ctx.messages("residents.not_proven"))
    return json_response({"account_number": customer.account_number, "name": masked(customer.name),
                          "verified": True, "verified_by": method})
