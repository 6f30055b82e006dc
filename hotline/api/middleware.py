"""Errors as JSON, security headers, who is calling (a staff session cookie or the service token),
and an access log that leaves secrets out."""
from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from typing import Any

from aiohttp import web
from aiohttp.web_log import AccessLogger

from hotline.actors import SERVICE
from hotline.api.registry import ACTOR, CTX, STAFF_SESSION, ApiError, Handler, ctx_of, json_response
from hotline.auth import production
from hotline.auth import sessions as staff_sessions
from hotline.errors import Refused
from hotline.redact import redact_url
from hotline.tickets.lifecycle import TicketError

log = logging.getLogger(__name__)

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# On every response: browsers must not guess a JSON or text answer into HTML or script.
ALWAYS_HEADERS = {"X-Content-Type-Options": "nosniff"}
# On the API and the console: no framing (click-jacking), no URLs leaked to other sites.
# (The web chat page may be embedded in the utility's own site, so it is left frameable.)
STAFF_HEADERS = {"Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison of a sent token with ours; any header text (non-ASCII too) is just wrong.

    hmac.compare_digest raises TypeError on a non-ASCII str, which would be a 500."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape"))


def _error(status: int, code: str, message: str, details: object = None) -> web.Response:
    body: dict[str, object] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details  # type: ignore[index]
    return json_response(body, status=status)


def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:  # a WebSocket or a stream: its headers are already sent
        return
    headers = dict(ALWAYS_HEADERS)
    ctx = request.app.get(CTX)
    if ctx is not None and production.is_production(ctx.config):
        headers["Strict-Transport-Security"] = production.HSTS
    if request.path.startswith(("/api/", "/console")):
        headers.update(STAFF_HEADERS)
    for name, value in headers.items():
        response.headers.setdefault(name, value)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API errors as JSON; the security headers on every response, error pages included."""
    try:
        response = await _handle(request, handler)
    except web.HTTPException as exc:  # outside /api/: aiohttp renders it, with our headers
        _security_headers(request, exc)
        raise
    _security_headers(request, response)
    return response


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    try:
        return await handler(request)
    except RecursionError:
        # json.loads of a body nested thousands deep; nothing was read into the store.
        return _error(400, "invalid_json", "the request body is nested too deeply")
    except ApiError as exc:
        return _error(exc.status, exc.code, exc.message, exc.details)
    except (TicketError, Refused) as exc:
        return _error(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status >= 400:
            answer = _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
            if "Allow" in exc.headers:  # a 405 says which methods the path has (RFC 9110)
                answer.headers["Allow"] = exc.headers["Allow"]
            return answer
        raise
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return _error(500, "internal_error", "internal error; nothing was changed")


async def authenticate(request: web.Request) -> None:
    """Set the request's ACTOR and STAFF_SESSION, or leave them unset."""
    ctx = ctx_of(request)
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        expected = ctx.config.api.service_token
        if scheme.lower() != "bearer" or not expected or not same_secret(token.strip(), expected):
            raise ApiError(401, "invalid_token", "the bearer token is not valid")
        request[ACTOR] = SERVICE
        return
    cookie = request.cookies.get(staff_sessions.COOKIE)
    if not cookie:
        return
    async with ctx.readers() as session:
        found = await staff_sessions.resolve(session, cookie, ctx.clock())
    if found is None:
        return
    staff, sess = found
    request[ACTOR] = staff_sessions.actor_for(staff)
    request[STAFF_SESSION] = sess


def guard(handler: Handler, roles: frozenset[str] | None) -> Handler:
    """Wrap a view with sign-in, role and CSRF checks."""
    async def guarded(request: web.Request) -> web.StreamResponse:
        if roles is None:
            return await handler(request)
        await authenticate(request)
        actor = request.get(ACTOR)
        if actor is None:
            raise ApiError(401, "unauthenticated", "sign in or send a bearer token")
        role = "service" if actor.kind == "service" else actor.role
        if role not in roles:
            raise ApiError(403, "forbidden", f"role {role!r} may not do this")
        sess = request.get(STAFF_SESSION)
        if sess is not None and request.method in UNSAFE:
            sent = request.headers.get("X-CSRF-Token", "")
            if not same_secret(sent, sess.csrf_token):
                raise ApiError(403, "csrf", "missing or wrong X-CSRF-Token header")
        return await handler(request)
    return guarded


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log (same format) without personal values or secrets (hotline/redact.py).

    The default log writes each request line with its query string and path: a web-chat
    client id (the only key to that chat's history), a phone or account number searched
    for, a survey link's token, WeChat's signature, timestamp and nonce (what a replay
    needs). Here every query value is dropped and identifier or token path segments are
    replaced, in the request line and the Referer; run_hotline.py passes this class to
    web.run_app.
    """

    def _format_line(self, request: Any, response: web.StreamResponse,
                     time: float) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [(key, redact_url(value) if isinstance(value, str) and key in URL_KEYS else value)
                for key, value in super()._format_line(request, response, time)]


# The access log's fields that hold a URL: the request line (%r) and the Referer header.
URL_KEYS = ("first_request_line", ("request_header", "Referer"))
