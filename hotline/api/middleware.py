"""Errors as JSON, security headers, who is calling (a staff session cookie or the service token),
and an access log that leaves secrets out."""
from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web
from aiohttp.web_log import AccessLogger

from hotline.actors import SERVICE
from hotline.api.registry import ACTOR, STAFF_SESSION, ApiError, Handler, ctx_of, json_response
from hotline.auth import sessions as staff_sessions
from hotline.errors import Refused
from hotline.tickets.lifecycle import TicketError

log = logging.getLogger(__name__)

UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
# Query parameters whose values never reach the access log: WeChat's signatures, the values they sign,
# the verification echo, and the resident's openid.
SECRET_QUERY_KEYS = frozenset({"signature", "msg_signature", "timestamp", "nonce", "echostr", "openid"})
# On every response: browsers must not guess a JSON or text answer into HTML or script.
ALWAYS_HEADERS = {"X-Content-Type-Options": "nosniff"}
# On the API and the console: no framing (click-jacking), no URLs leaked to other sites.
# (The web chat page may be embedded in the utility's own site, so it is left frameable.)
STAFF_HEADERS = {"Referrer-Policy": "same-origin", "X-Frame-Options": "DENY"}


def _error(status: int, code: str, message: str, details: object = None) -> web.Response:
    body: dict[str, object] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details  # type: ignore[index]
    return json_response(body, status=status)


def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:  # a WebSocket or a stream: its headers are already sent
        return
    headers = dict(ALWAYS_HEADERS)
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
            return _error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)
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
        if scheme.lower() != "bearer" or not expected or not hmac.compare_digest(token.strip(), expected):
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
            if not hmac.compare_digest(sent, sess.csrf_token):
                raise ApiError(403, "csrf", "missing or wrong X-CSRF-Token header")
        return await handler(request)
    return guarded


def redact_query(text: str) -> str:
    """`text` (a request line, a URL) with the values of SECRET_QUERY_KEYS replaced by "-"."""
    head, sep, rest = text.partition("?")
    if not sep:
        return text
    query, space, tail = rest.partition(" ")  # a request line goes on with " HTTP/1.1"
    parts = []
    for item in query.split("&"):
        key, eq, _ = item.partition("=")
        parts.append(f"{key}=-" if eq and unquote_plus(key).lower() in SECRET_QUERY_KEYS else item)
    return f"{head}?{'&'.join(parts)}{space}{tail}"


class RedactingAccessLogger(AccessLogger):
    """aiohttp's access log (same format) without WeChat's signatures, nonces and the like.

    The default log writes each request line with its query string, and a captured
    signature, timestamp and nonce is what a replay needs; run_hotline.py passes this
    class to web.run_app.
    """

    def _format_line(self, request: Any, response: web.StreamResponse,
                     time: float) -> Iterable[tuple[str | tuple[str, str], str]]:
        return [(key, redact_query(value) if isinstance(value, str) else value)
                for key, value in super()._format_line(request, response, time)]
