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


async def get_customer(account_number: str) -> dict[str, Any]:
    return await request("GET", f"/api/customers/{account_number}")


async def get_balance(account_number: str) -> dict[str, Any]:
    return await request("GET", f"/api/customers/{account_number}/balance")


async def get_outages(area: str | None = None) -> list[dict[str, Any]]:
    return (await request("GET", "/api/outages", params={"area": area} if area else None))["items"]


async def add_comment(number: str, note: str) -> dict[str, Any]:
    return await request("POST", f"/api/tickets/{number}/comments", json={"note": note[:4000]})
