"""A small client of the hotline HTTP API, authenticated with the service token.

HOTLINE_API_URL (default http://127.0.0.1:8080) and HOTLINE_API_SERVICE_TOKEN
come from the environment; run_hotline.py sets both when it starts this server.
"""
from __future__ import annotations

import os
from typing import Any

import aiohttp

TIMEOUT = aiohttp.ClientTimeout(total=5)


class ApiUnavailable(Exception):
    """The hotline API did not answer or failed: the bot says so and asks for a person."""


class NotFound(Exception):
    pass


class TooManyTries(ApiUnavailable):
    """429: the hotline refuses more tries for now (wrong proofs, different accounts looked up)."""


class Forbidden(Exception):
    """403: not for this resident (not verified for the account)."""


class Rejected(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _base() -> str:
    return os.environ.get("HOTLINE_API_URL", "http://127.0.0.1:8080").rstrip("/")


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {os.environ.get('HOTLINE_API_SERVICE_TOKEN', '')}"}


async def request(method: str, path: str, *, json: Any = None, params: dict[str, str] | None = None) -> Any:
    try:
        async with aiohttp.ClientSession(timeout=TIMEOUT, headers=_headers()) as session:
            async with session.request(method, _base() + path, json=json, params=params) as resp:
                body = await resp.json(content_type=None)
                if resp.status == 404:
                    raise NotFound(path)
                if resp.status == 429:
                    raise TooManyTries(path)
                if resp.status == 403:
                    raise Forbidden(path)
                if resp.status in (400, 409, 422):
                    raise Rejected(body.get("error", {}).get("message", "rejected"))
                if resp.status >= 300:
                    raise ApiUnavailable(f"{method} {path}: HTTP {resp.status}")
                return body
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        raise ApiUnavailable(f"{method} {path}: {exc}") from exc


async def create_ticket(payload: dict[str, Any]) -> dict[str, Any]:
    return await request("POST", "/api/tickets", json=payload)


async def get_ticket(number: str) -> dict[str, Any]:
    return await request("GET", f"/api/tickets/{number}")


async def find_tickets(**filters: str) -> list[dict[str, Any]]:
    return (await request("GET", "/api/tickets", params={"limit": "3", **filters}))["items"]


def _account_query(conversation_id: Any, account_number: str) -> dict[str, str]:
    # No conversation (rasa shell): the hotline refuses (422), it cannot tell who is asking.
    return {"conversation_id": str(conversation_id or ""), "account_number": account_number}


async def resident_statement(conversation_id: Any, account_number: str) -> dict[str, Any]:
    """The account as this conversation's resident may see it: `verified` and the full statement, or at most
    the masked name and the amount due. 429 (TooManyTries): too many different accounts this hour."""
    return await request("GET", "/api/residents/statement", params=_account_query(conversation_id, account_number))


async def resident_tickets(conversation_id: Any, account_number: str) -> list[dict[str, Any]] | None:
    """The account's latest tickets for a verified resident; None when the resident must prove it first."""
    try:
        return (await request("GET", "/api/residents/tickets",
                              params=_account_query(conversation_id, account_number)))["items"]
    except Forbidden:
        return None


async def verify_resident(conversation_id: Any, account_number: str, proof: str) -> dict[str, Any]:
    """422 (Rejected): the proof does not match; 429 (TooManyTries): too many wrong proofs."""
    return await request("POST", "/api/residents/verify", json={"conversation_id": conversation_id,
                                                                 "account_number": account_number,
                                                                 "proof": proof[:50]})


async def get_outages(area: str | None = None) -> list[dict[str, Any]]:
    return (await request("GET", "/api/outages", params={"area": area} if area else None))["items"]


async def add_comment(number: str, note: str) -> dict[str, Any]:
    return await request("POST", f"/api/tickets/{number}/comments", json={"note": note[:4000]})


async def locate(address: str = "", latitude: Any = None, longitude: Any = None) -> str | None:
    """The supply area of an address or of a WeChat location, by the hotline's own areas and outlines."""
    params = {"address": address[:500]}
    if latitude is not None and longitude is not None:
        params |= {"latitude": str(latitude), "longitude": str(longitude)}
    return (await request("GET", "/api/areas/locate", params=params)).get("area")


async def bind(conversation_id: Any, account_number: str, proof: str) -> dict[str, Any]:
    return await request("POST", "/api/bindings", json={"conversation_id": conversation_id,
                                                        "account_number": account_number, "proof": proof[:50]})


async def unbind(conversation_id: Any) -> int:
    return int((await request("POST", "/api/bindings/unbind", json={"conversation_id": conversation_id}))["unbound"])


async def bound_accounts(conversation_id: Any) -> list[dict[str, Any]]:
    return (await request("GET", "/api/bindings", params={"conversation_id": str(conversation_id)}))["items"]
